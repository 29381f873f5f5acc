// Checks the generated client against a running Accord server over gRPC-Web, in local
// development mode (the caller named by x-accord-actor, set by an interceptor):
//   tsx test/check.ts http://127.0.0.1:50051     (or ACCORD_URL=…)
// Each check prints one "ok: …" line; any failure throws and exits non-zero.
// tests/typescript_client.rs runs it against a fresh server and reads those lines.
import assert from "node:assert/strict";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  AlignmentService,
  AuditService,
  CommandService,
  InitiativeStatus,
  Role,
  Stage,
  Verdict,
  accordTransport,
} from "../src/index.js";

const baseUrl = process.argv[2] ?? process.env.ACCORD_URL;
if (baseUrl === undefined || baseUrl === "") {
  console.error("usage: tsx test/check.ts <gRPC-Web URL of an Accord server, e.g. http://127.0.0.1:50051>");
  process.exit(2);
}

const OWNER = "pm@example.com";
const DRIVER = "dana@example.com";
const ENGINEER = "eve@example.com";
const DESIGNER = "dee@example.com";

// One client per caller: each transport names its caller (and service roles) on every
// call. The owner staffs the initiative, which takes an administrator (the default role
// in local development mode); the others are members, as people are.
// Every call, streams included, has 20 s (grpc-timeout), so a hang fails the check.
const options = { defaultTimeoutMs: 20_000 };
const commandsAs = (actor: string) =>
  createClient(
    CommandService,
    accordTransport(baseUrl, actor === OWNER ? { actor } : { actor, roles: ["member"] }, options),
  );
const alignment = createClient(AlignmentService, accordTransport(baseUrl, { actor: OWNER }, options));
const audit = createClient(AuditService, accordTransport(baseUrl, { actor: OWNER, roles: ["auditor"] }, options));

function ok(what: string): void {
  console.log(`ok: ${what}`);
}

// A key of its own, so the script can run against a server that has seen it before.
const key = `TS-${Date.now().toString(36).toUpperCase()}`;

const created = await commandsAs(OWNER).createInitiative({
  key,
  title: "Checked from TypeScript",
  summary: "Created by clients/typescript/test/check.ts over gRPC-Web.",
  stage: Stage.DEFINITION,
  requiredFunctions: ["engineering", "design"],
});
assert.match(created.initiativeId, /^[0-9a-f-]{36}$/, "CreateInitiative returns the new initiative's id");
assert.equal(created.streamVersion, 1n);
ok(`created initiative ${key} (${created.initiativeId})`);

for (const [principal, fn, role] of [
  [DRIVER, "product", Role.DRIVER],
  [ENGINEER, "engineering", Role.APPROVER],
  [DESIGNER, "design", Role.APPROVER],
] as const) {
  await commandsAs(OWNER).assignStakeholder({ initiative: key, principal, function: fn, role });
}
ok("assigned a driver and two approvers");

const proposed = await commandsAs(DRIVER).proposeDecision({
  initiative: key,
  content: {
    title: "Generate the dashboard's client from the proto",
    context: "Dashboards other than the board call Accord from browsers.",
    options: ["protoc-gen-es and Connect", "hand-written fetch calls"],
    proposal: "protoc-gen-es and Connect over gRPC-Web.",
    rationale: "The proto is the contract; buf checks it.",
  },
});
const decisionId = proposed.createdId;
assert.notEqual(decisionId, "", "ProposeDecision returns the decision's id");
ok(`proposed decision ${decisionId}`);

const pending = await alignment.getAlignment({ initiative: key });
assert.equal(pending.status, InitiativeStatus.PENDING, "before the sign-offs the initiative is pending");

let last = proposed;
for (const [signer, fn] of [
  [ENGINEER, "engineering"],
  [DESIGNER, "design"],
] as const) {
  last = await commandsAs(signer).recordSignOff({
    initiative: key,
    decisionId,
    function: fn,
    verdict: Verdict.APPROVE,
    revision: 1,
  });
}
ok(`signed off engineering and design (stream version ${last.streamVersion})`);

const aligned = await alignment.getAlignment({ initiative: key });
assert.equal(aligned.status, InitiativeStatus.ALIGNED, `status is ${InitiativeStatus[aligned.status]}`);
assert.equal(aligned.version, last.streamVersion, "the alignment reflects the last sign-off");
assert.equal(aligned.approvedPairs, 2);
assert.equal(aligned.totalPairs, 2);
ok(`alignment of ${key} is ${InitiativeStatus[aligned.status]} at version ${aligned.version}`);

// A server stream: the watch's snapshot of this initiative, then caught_up.
const watching = new AbortController();
const snapshot = [];
let caughtUp: bigint | undefined;
for await (const update of alignment.watchAlignments({ initiatives: [key] }, { signal: watching.signal })) {
  if (update.update.case === "alignment") {
    snapshot.push(update.update.value);
  } else if (update.update.case === "caughtUp") {
    caughtUp = update.update.value.position;
    break;
  }
}
watching.abort();
assert.equal(snapshot.length, 1, "the snapshot holds the one initiative watched");
assert.equal(snapshot[0]?.status, InitiativeStatus.ALIGNED);
assert.equal(caughtUp, last.globalPosition, "caught up at the last sign-off's position");
ok(`WatchAlignments streamed ${snapshot.length} alignment and caught_up at position ${caughtUp}`);

// Another server stream: the initiative's history, which ends by itself (no follow).
const types: string[] = [];
for await (const item of audit.readEvents({ initiative: key })) {
  if (item.item.case === "event") {
    types.push(item.item.value.eventType);
  }
}
assert.equal(types.length, Number(last.streamVersion), "one event per stream version");
assert.equal(types[0], "InitiativeCreated");
assert.equal(types.filter((t) => t === "SignOffRecorded").length, 2);
ok(`ReadEvents streamed ${types.length} events (${types[0]} … ${types[types.length - 1]})`);

// An error with its code: an initiative that does not exist.
const missing = await alignment.getAlignment({ initiative: "NO-SUCH-INITIATIVE" }).then(
  (answer) => assert.fail(`GetAlignment of a missing initiative answered ${answer.key}`),
  (error: unknown) => ConnectError.from(error),
);
assert.equal(missing.code, Code.NotFound, `code is ${Code[missing.code]}: ${missing.rawMessage}`);
ok(`GetAlignment of a missing initiative is ${Code[missing.code]}: ${missing.rawMessage}`);

console.log("all checks passed");
