//! Every vector of `shared/testdata/tarsum/VECTORS.md` that names sha256 or sha512, computed
//! with several chunkings (1 byte, then 16 KiB, then the rest, as the upstream test reads),
//! plus save/resume at every 512-byte boundary.
//!
//! Rows 12-15 of the upstream table (md5, sha1, sha224, sha384) are not reproducible: the
//! crate's `HashAlgorithm` only has sha256 and sha512, the only two a TarSum label can name.

mod tarsum_common;

use flate2::read::GzDecoder;
use layerstore::digest::{HashAlgorithm, TarsumVersion};
use layerstore::tarsum::TarSum;
use std::io::Read;
use tarsum_common::{read, L1, L2};

fn version_of(label: &str) -> TarsumVersion {
    match label {
        "tarsum" => TarsumVersion::V0,
        "tarsum.v1" => TarsumVersion::V1,
        "tarsum.dev" => TarsumVersion::Dev,
        other => panic!("label {other}"),
    }
}

/// Computes the sum of `tar` for `expected`'s algorithm with three chunkings and a resume at
/// every block boundary, and checks them all.
fn check(tar: &[u8], extra: Option<&[u8]>, expected: &str) {
    let (algorithm, _) = expected.split_once(':').unwrap();
    let (label, hash) = algorithm.split_once('+').unwrap();
    let version = version_of(label);
    let hash: HashAlgorithm = hash.parse().unwrap();
    let fresh = || {
        let t = TarSum::new(version, hash);
        match extra {
            Some(e) => t.with_extra(e),
            None => t,
        }
    };
    // Upstream: 1 byte, 16 KiB, the rest.
    let mut t = fresh();
    let first = tar.len().min(1);
    let second = tar.len().min(1 + 16384);
    t.update(&tar[..first]).unwrap();
    t.update(&tar[first..second]).unwrap();
    t.update(&tar[second..]).unwrap();
    assert_eq!(t.finish().unwrap().to_string(), expected);
    // Byte at a time (small archives; debug-build SHA-2 is slow).
    if tar.len() <= 64 << 10 {
        let mut t = fresh();
        for b in tar {
            t.update(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(t.finish().unwrap().to_string(), expected);
    }
    // Save and resume at block boundaries and odd offsets (about 40 cuts per archive).
    let step = (tar.len() / 20).max(1);
    let cuts = (0..=tar.len())
        .step_by(step.next_multiple_of(512))
        .chain((7..tar.len()).step_by(step));
    for cut in cuts {
        let mut t = fresh();
        t.update(&tar[..cut]).unwrap();
        let mut resumed = TarSum::decode(&t.encode()).unwrap();
        assert_eq!(resumed, t);
        resumed.update(&tar[cut..]).unwrap();
        assert_eq!(resumed.finish().unwrap().to_string(), expected, "cut {cut}");
    }
}

/// (archive, extra bytes, expected digest string)
type Row<'a> = (&'a [u8], Option<&'a [u8]>, &'a str);

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

#[test]
fn upstream_tarsums_table() {
    let l1 = read(&format!("{L1}/layer.tar"));
    let l1_json = read(&format!("{L1}/json"));
    let l2 = read(&format!("{L2}/layer.tar"));
    let l2_json = read(&format!("{L2}/json"));
    let xattr = read("xattr/layer.tar");
    let xattr_json = read("xattr/json");
    let sized = gunzip(&read("generated/sized-1x1MiB-zeros.tar.gz"));
    let rows: &[Row<'_>] = &[
        (&l1, Some(&l1_json), "tarsum+sha256:4095cc12fa5fdb1ab2760377e1cd0c4ecdd3e61b4f9b82319d96fcea6c9a41c6"),
        (&l1, Some(&l1_json), "tarsum.dev+sha256:db56e35eec6ce65ba1588c20ba6b1ea23743b59e81fb6b7f358ccbde5580345c"),
        (&xattr, Some(&xattr_json), "tarsum+sha256:07e304a8dbcb215b37649fde1a699f8aeea47e60815707f1cdf4d55d25ff6ab4"),
        (&xattr, Some(&xattr_json), "tarsum.dev+sha256:6c58917892d77b3b357b0f9ad1e28e1f4ae4de3a8006bd3beb8beda214d8fd16"),
        (&l2, Some(&l2_json), "tarsum+sha256:c66bd5ec9f87b8f4c6135ca37684618f486a3dd1d113b138d0a177bfa39c2571"),
        (&sized, None, "tarsum+sha256:75258b2c5dcd9adfe24ce71eeca5fc5019c7e669912f15703ede92b1a60cb11f"),
        (&sized, None, "tarsum+sha512:7c56de40b2d1ed3863ff25d83b59cdc8f53e67d1c01c3ee8f201f8e4dec3107da976d0c0ec9109c962a152b32699fe329b2dab13966020e400c32878a0761a7e"),
    ];
    for (tar, extra, expected) in rows {
        check(tar, *extra, expected);
    }
}

#[test]
fn collision_tars_v0_and_v1() {
    let rows = [
        (
            "collision/collision-0.tar",
            "7cabb5e9128bb4a93ff867b9464d7c66a644ae51ea2e90e6ef313f3bef93f077",
            "f58c88e8bec1a3f43ec5f0af0f02e4b8e9bf3730282d515cd31086a99e43f50a",
        ),
        (
            "collision/collision-1.tar",
            "805fd393cfd58900b10c5636cf9bab48b2406d9b66523122f2352620c85dc7f9",
            "ac77bf939e533e883cea7b88db2519aa5e4c9014ec0154e86f17b6df3c9b65cc",
        ),
        (
            "collision/collision-2.tar",
            "85d2b8389f077659d78aca898f9e632ed9161f553f144aef100648eac540147b",
            "0a707b1a5384e71318173f3bbb78f9603ead51f33872095856d0ef882507dc50",
        ),
        (
            "collision/collision-3.tar",
            "cbe4dee79fe979d69c16c2bccd032e3205716a562f4a3c1ca1cbeed7b256eb19",
            "5487308f0d81a59788c566049dd7228b93825c11376486aa93301a7da2b31362",
        ),
    ];
    for (file, v0, v1) in rows {
        let tar = read(file);
        check(&tar, None, &format!("tarsum+sha256:{v0}"));
        check(&tar, None, &format!("tarsum.v1+sha256:{v1}"));
        check(&tar, None, &format!("tarsum.dev+sha256:{v1}"));
    }
}

#[test]
fn other_values_without_extra_and_v1() {
    let rows = [
        (
            format!("{L1}/layer.tar"),
            Some(format!("{L1}/json")),
            "4095cc12fa5fdb1ab2760377e1cd0c4ecdd3e61b4f9b82319d96fcea6c9a41c6",
            "db56e35eec6ce65ba1588c20ba6b1ea23743b59e81fb6b7f358ccbde5580345c",
        ),
        (
            format!("{L2}/layer.tar"),
            Some(format!("{L2}/json")),
            "c66bd5ec9f87b8f4c6135ca37684618f486a3dd1d113b138d0a177bfa39c2571",
            "2db1079d2a7f6cd7836712c95b8961d96fb1e222128dbef251a74c312cdf43ba",
        ),
        (
            "xattr/layer.tar".to_string(),
            Some("xattr/json".to_string()),
            "07e304a8dbcb215b37649fde1a699f8aeea47e60815707f1cdf4d55d25ff6ab4",
            "6c58917892d77b3b357b0f9ad1e28e1f4ae4de3a8006bd3beb8beda214d8fd16",
        ),
        (
            format!("{L1}/layer.tar"),
            None,
            "5e2c2a5b29c91f5ae3323f6cd74d1274c99de342669cb2e0c2b99f5e69c15598",
            "41cd5c911333ee394776e432fc5a27cc82dfea313e5feff965e31c0fddd9213d",
        ),
        (
            format!("{L2}/layer.tar"),
            None,
            "2a7812e636235448785062100bb9103096aa6655a8f6bb9ac9b13fe8290f66df",
            "324d4cf44ee7daa46266c1df830c61a7df615c0632176a339e7310e34723d67a",
        ),
        (
            "xattr/layer.tar".to_string(),
            None,
            "c4c85576835bb02f053d33ef691d7c92a889ef8365481c608e6c33769d519ddf",
            "e77e6c36c4bc32c0795ca8a8c086bbaa6cb83b0d785522182d45d770cc5eeb6f",
        ),
    ];
    for (file, extra, v0, v1) in rows {
        let tar = read(&file);
        let extra = extra.map(|e| read(&e));
        check(&tar, extra.as_deref(), &format!("tarsum+sha256:{v0}"));
        check(&tar, extra.as_deref(), &format!("tarsum.v1+sha256:{v1}"));
        check(&tar, extra.as_deref(), &format!("tarsum.dev+sha256:{v1}"));
    }
}

#[test]
fn generated_iteration_cases() {
    let rows = [
        (
            "generated/iteration-1and2-file.txt.tar",
            "tarsum+sha256:626c4a2e9a467d65c33ae81f7f3dedd4de8ccaee72af73223c4bc4718cbc7bbd",
        ),
        (
            "generated/iteration-1and2-file.txt.tar",
            "tarsum.dev+sha256:6ffd43a1573a9913325b4918e124ee982a99c0f3cba90fc032a65f5e20bdd465",
        ),
        (
            "generated/iteration-3-another.txt.tar",
            "tarsum+sha256:db3f521106fde65c7a7c89c1f0d477461078b62d5a173433334818875c0535d4",
        ),
        (
            "generated/iteration-3-another.txt.tar",
            "tarsum.dev+sha256:862964db95e0fa7e42836ae4caab3576ab1df8d275720a45bdd01a5a3730cc63",
        ),
        (
            "generated/iteration-4-xattrs-key1.tar",
            "tarsum+sha256:b1f97eab73abd7593c245e51070f9fbdb1824c6b00a0b7a3d7f0015cd05e9e86",
        ),
        (
            "generated/iteration-4-xattrs-key1.tar",
            "tarsum.dev+sha256:4b1ba03544b49d96a32bacc77f8113220bd2f6a77e7e6d1e7b33cd87117d88e7",
        ),
        (
            "generated/iteration-5-xattrs-KEY1.tar",
            "tarsum+sha256:b1f97eab73abd7593c245e51070f9fbdb1824c6b00a0b7a3d7f0015cd05e9e86",
        ),
        (
            "generated/iteration-5-xattrs-KEY1.tar",
            "tarsum.dev+sha256:410b602c898bd4e82e800050f89848fc2cf20fd52aa59c1ce29df76b878b84a6",
        ),
        (
            "generated/iteration-6-xattrs-NOT.tar",
            "tarsum+sha256:b1f97eab73abd7593c245e51070f9fbdb1824c6b00a0b7a3d7f0015cd05e9e86",
        ),
        (
            "generated/iteration-6-xattrs-NOT.tar",
            "tarsum.dev+sha256:ffe29b21595a1273a9c660102485b8428d6ba9dd14346e2145b19cbe1bbe54fe",
        ),
    ];
    for (file, expected) in rows {
        check(&read(file), None, expected);
    }
    let sized = gunzip(&read("generated/sized-1x1MiB-zeros.tar.gz"));
    check(
        &sized,
        None,
        "tarsum.dev+sha256:4c2ed7c7cc8b197c5db226e51a34e87584d5f7a925e7a6efcf72da21979078f0",
    );
}

#[test]
fn empty_inputs_give_the_hash_of_nothing() {
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    for version in [TarsumVersion::V0, TarsumVersion::V1, TarsumVersion::Dev] {
        let label = version.label();
        let expected = format!("{label}+sha256:{EMPTY}");
        check(&[0u8; 1024], None, &expected);
        check(&[], None, &expected);
        check(&[0u8; 512], None, &expected);
    }
}

/// VECTORS.md "Values from before March 2018": uname/gname hashed with their values.
#[test]
fn pre_2018_legacy_owner_names() {
    let rows = [
        (
            "collision/collision-0.tar",
            "08653904a68d3ab5c59e65ef58c49c1581caa3c34744f8d354b3f575ea04424a",
        ),
        (
            "collision/collision-1.tar",
            "b51c13fbefe158b5ce420d2b930eef54c5cd55c50a2ee4abdddea8fa9f081e0d",
        ),
        (
            "collision/collision-2.tar",
            "381547080919bb82691e995508ae20ed33ce0f6948d41cafbeb70ce20c73ee8e",
        ),
        (
            "collision/collision-3.tar",
            "f886e431c08143164a676805205979cd8fa535dfcef714db5515650eea5a7c0f",
        ),
    ];
    for (file, expected) in rows {
        let tar = read(file);
        let mut t = TarSum::new(TarsumVersion::V0, HashAlgorithm::Sha256).with_legacy_owner_names();
        t.update(&tar[..tar.len() / 3]).unwrap();
        let mut t = TarSum::decode(&t.encode()).unwrap();
        t.update(&tar[tar.len() / 3..]).unwrap();
        assert_eq!(
            t.finish().unwrap().to_string(),
            format!("tarsum+sha256:{expected}")
        );
    }
    // The L1/L2/xattr layers have empty uname/gname: the dialect does not change them.
    let l1 = read(&format!("{L1}/layer.tar"));
    let mut t = TarSum::new(TarsumVersion::V0, HashAlgorithm::Sha256).with_legacy_owner_names();
    t.update(&l1).unwrap();
    assert_eq!(
        t.finish().unwrap().hex(),
        "5e2c2a5b29c91f5ae3323f6cd74d1274c99de342669cb2e0c2b99f5e69c15598"
    );
}
