//! The Garage test cluster itself (`common::garage`): three real nodes serve S3 with the bucket
//! and key it made, objects written through one node are read through another, and with one node
//! SIGKILLed the other two still accept writes and reads (quorum 2 of 3).

mod common;

use std::time::Duration;

use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use common::garage::GarageCluster;

/// A client of `endpoint` with the cluster's key, configured explicitly (no environment, no
/// profile: this machine's `AWS_CA_BUNDLE` and the like play no part), path-style addressing.
fn client(cluster: &GarageCluster, endpoint: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cluster.region.clone()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            &cluster.access_key_id,
            &cluster.secret_access_key,
            None,
            None,
            "garage-test",
        ))
        .force_path_style(true)
        // A request that hangs (e.g. on the killed node) fails the test instead.
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

async fn put(client: &Client, bucket: &str, key: &str, body: &[u8]) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutObject {bucket}/{key}: {e:?}"));
}

async fn get(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObject {bucket}/{key}: {e:?}"));
    object.body.collect().await.unwrap().to_vec()
}

async fn list(client: &Client, bucket: &str) -> Vec<String> {
    let listing = client
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListObjectsV2 {bucket}: {e:?}"));
    listing
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

#[test]
fn three_nodes_serve_s3_and_keep_a_quorum_with_one_node_killed() {
    let started = std::time::Instant::now();
    let Some(mut cluster) = GarageCluster::start() else {
        return;
    };
    eprintln!("garage cluster up in {:?}", started.elapsed());
    let env = cluster.env();
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
    ] {
        assert!(
            env.iter().any(|(n, v)| n == name && !v.is_empty()),
            "{env:?}"
        );
    }
    assert_eq!(cluster.endpoints.len(), 3);
    assert_eq!(cluster.endpoint, cluster.endpoints[0]);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bucket = cluster.bucket.clone();
    let node0 = client(&cluster, &cluster.endpoints[0]);
    let node1 = client(&cluster, &cluster.endpoints[1]);
    // Larger than Garage's 1 MiB block, so the data path (not only the metadata) is replicated.
    let big = common::content(3 << 20, 7);
    runtime.block_on(async {
        put(&node0, &bucket, "small", b"hello garage").await;
        put(&node0, &bucket, "dir/big", &big).await;
        // Written through node 0, read through node 1.
        assert_eq!(get(&node1, &bucket, "small").await, b"hello garage");
        assert!(get(&node1, &bucket, "dir/big").await == big);
        assert_eq!(list(&node1, &bucket).await, ["dir/big", "small"]);
    });

    // Another bucket for the same key.
    cluster.create_bucket("second");
    runtime.block_on(async {
        put(&node1, "second", "k", b"in the second bucket").await;
        assert_eq!(get(&node0, "second", "k").await, b"in the second bucket");
        assert_eq!(list(&node0, &bucket).await.len(), 2);
    });

    // Two nodes of three are a quorum: writes and reads go on.
    cluster.kill_node(2);
    runtime.block_on(async {
        put(&node0, &bucket, "after-kill", b"written by 2 of 3").await;
        put(&node1, &bucket, "dir/big-after-kill", &big).await;
        assert_eq!(
            get(&node1, &bucket, "after-kill").await,
            b"written by 2 of 3"
        );
        assert!(get(&node0, &bucket, "dir/big-after-kill").await == big);
        assert_eq!(get(&node0, &bucket, "small").await, b"hello garage");
        assert_eq!(
            list(&node0, &bucket).await,
            ["after-kill", "dir/big", "dir/big-after-kill", "small"]
        );
    });
    drop(cluster);
}
