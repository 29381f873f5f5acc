//! The Merkle tree hash of RFC 6962 (leaf, node, root), and the stream heads a checkpoint
//! records with the root over them (the tree of the checkpoints taken before the log tree).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::export::parse_hash;

/// SHA-256(0x00 ‖ data): the hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right): the hash of an inner node.
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// RFC 6962's Merkle tree hash over already hashed leaves (see the `audit` module comment).
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves {
        [] => Sha256::digest([]).into(),
        [leaf] => *leaf,
        _ => {
            // The largest power of two smaller than the number of leaves.
            let split = 1usize << (usize::BITS - 1 - (leaves.len() - 1).leading_zeros());
            let (left, right) = leaves.split_at(split);
            node_hash(&merkle_root(left), &merkle_root(right))
        }
    }
}

/// The head of one stream as a checkpoint records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamHead {
    pub stream_id: Uuid,
    pub version: u64,
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

impl StreamHead {
    /// The 56 bytes of its leaf: stream id ‖ version (u64 big-endian) ‖ head hash.
    pub fn leaf_data(&self) -> [u8; 56] {
        let mut data = [0; 56];
        data[..16].copy_from_slice(self.stream_id.as_bytes());
        data[16..24].copy_from_slice(&self.version.to_be_bytes());
        data[24..].copy_from_slice(&self.hash);
        data
    }
}

/// The Merkle root over stream heads, which must be ordered by stream id (the root of
/// the checkpoints taken before the log tree, `CheckpointTree::StreamHeads`).
pub fn heads_root(heads: &[StreamHead]) -> [u8; 32] {
    let leaves: Vec<[u8; 32]> = heads.iter().map(|head| leaf_hash(&head.leaf_data())).collect();
    merkle_root(&leaves)
}

/// Serde for a 32-byte hash as lower-case hex.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_hash("hash", &text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_root(leaves: &[&[u8]]) -> String {
        let hashed: Vec<[u8; 32]> = leaves.iter().map(|data| leaf_hash(data)).collect();
        hex::encode(merkle_root(&hashed))
    }

    // The test vectors of RFC 6962's reference implementation (certificate-transparency,
    // merkle_tree_test): leaves "", 00, 10, 2021, 3031, 40414243, 5051525354555657, ...
    const LEAVES: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f],
    ];

    #[test]
    fn the_empty_tree_is_the_hash_of_the_empty_string() {
        assert_eq!(hex_root(&[]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn one_leaf_is_its_leaf_hash() {
        assert_eq!(hex_root(&LEAVES[..1]), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }

    #[test]
    fn three_leaves_split_at_the_largest_power_of_two_below() {
        assert_eq!(hex_root(&LEAVES[..3]), "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77");
        let [a, b, c] = [LEAVES[0], LEAVES[1], LEAVES[2]].map(leaf_hash);
        assert_eq!(merkle_root(&[a, b, c]), node_hash(&node_hash(&a, &b), &c));
    }

    #[test]
    fn the_other_published_vectors_hold() {
        let expected = [
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (n, root) in (2..=8).zip(expected) {
            assert_eq!(hex_root(&LEAVES[..n]), root, "{n} leaves");
        }
    }

    #[test]
    fn a_head_leaf_is_id_then_big_endian_version_then_hash() {
        let head = StreamHead { stream_id: Uuid::from_u128(0x0102), version: 0x0a0b, hash: [7; 32] };
        let data = head.leaf_data();
        assert_eq!(&data[..16], Uuid::from_u128(0x0102).as_bytes());
        assert_eq!(&data[16..24], &[0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
        assert_eq!(&data[24..], &[7; 32]);
        assert_eq!(heads_root(std::slice::from_ref(&head)), leaf_hash(&data));
    }
}
