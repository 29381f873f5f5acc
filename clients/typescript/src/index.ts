// The Accord API for browsers and Node over gRPC-Web: the generated messages and
// services (src/gen, from proto/accord/v1 by `npm run generate`), and a transport that
// names the caller.
import type { Interceptor, Transport } from "@connectrpc/connect";
import { type GrpcWebTransportOptions, createGrpcWebTransport } from "@connectrpc/connect-web";

export * from "./gen/accord/v1/types_pb.js";
export * from "./gen/accord/v1/commands_pb.js";
export * from "./gen/accord/v1/alignment_pb.js";
export * from "./gen/accord/v1/audit_pb.js";
export * from "./gen/accord/v1/webhooks_pb.js";

/** How a call says who is calling: a bearer token, or (local development mode only) a principal. */
export type Credentials = { token: string } | { actor: string; roles?: string[] };

/** Sets the metadata entries of `credentials` on every call (`authorization`, or `x-accord-actor`/`x-accord-roles`). */
export function credentialsInterceptor(credentials: Credentials): Interceptor {
  return (next) => async (request) => {
    if ("token" in credentials) {
      request.header.set("authorization", `Bearer ${credentials.token}`);
    } else {
      request.header.set("x-accord-actor", credentials.actor);
      if (credentials.roles !== undefined) {
        request.header.set("x-accord-roles", credentials.roles.join(","));
      }
    }
    return await next(request);
  };
}

/**
 * A gRPC-Web transport to the Accord server at `baseUrl` (its gRPC listener, e.g.
 * http://127.0.0.1:50051) naming the caller on every call; `options` are Connect's
 * (e.g. `defaultTimeoutMs`, sent as grpc-timeout).
 */
export function accordTransport(
  baseUrl: string,
  credentials: Credentials,
  options: Omit<GrpcWebTransportOptions, "baseUrl"> = {},
): Transport {
  return createGrpcWebTransport({
    ...options,
    baseUrl,
    interceptors: [credentialsInterceptor(credentials), ...(options.interceptors ?? [])],
  });
}
