//! The files under `deploy/` and `configs/cluster/` are what they say they are: every
//! server config is valid for the pinned nats-server, and the cluster stream variants
//! differ from the single-server files only in their replicas.

use std::process::Command;

use sequex_testkit::{configs_dir, nats_server::nats_server_bin, provision, workspace_root};

#[test]
fn every_server_config_under_deploy_is_valid() {
    let bin = nats_server_bin().unwrap();
    for file in [
        "deploy/nats-server.conf",
        "deploy/nats-users.conf",
        "deploy/cluster/nats-1.conf",
        "deploy/cluster/nats-2.conf",
        "deploy/cluster/nats-3.conf",
    ] {
        let out = Command::new(&bin)
            .arg("-c")
            .arg(workspace_root().join(file))
            .arg("-t")
            .envs(
                ["INGEST", "STRATEGY", "RECORDER", "ADMIN"]
                    .map(|u| (format!("SEQUEX_{u}_PASSWORD"), "x")),
            )
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains("is valid"),
            "{file}: {said}"
        );
    }
}

#[test]
fn cluster_configs_differ_only_in_replicas() {
    for file in std::fs::read_dir(configs_dir()).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap();
        let mut single = provision::read_json(&path).unwrap();
        let mut cluster = provision::read_json(&configs_dir().join("cluster").join(name))
            .unwrap_or_else(|e| panic!("configs/cluster/{} is missing: {e}", name.display()));
        if single.get("num_replicas") == Some(&serde_json::json!(1)) {
            assert_eq!(cluster["num_replicas"], 3, "{}", name.display());
            for config in [&mut single, &mut cluster] {
                config.as_object_mut().unwrap().remove("num_replicas");
                config.as_object_mut().unwrap().remove("description");
            }
        }
        assert_eq!(single, cluster, "{}", name.display());
    }
}
