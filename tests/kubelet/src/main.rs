//! `stash-test-kubelet`: the stand-in kubelet of the test cluster.
//!
//! The upstream control plane has no kubelet: without one pods stay Pending and bound pods
//! never finish terminating. This one registers Ready Nodes, binds pods to them, and runs
//! the containers of our image as local `stash` processes, each in a private mount and UTS
//! namespace whose root is an overlay of the host's (`sandbox.sh`), with the pod's volumes,
//! environment, service-account token and `/etc/hosts`, so in-cluster configuration works
//! as in a real pod. Containers of other images count as running without a process;
//! images from a registry under `.invalid` fail to pull (`ErrImagePull`).
//! Must run as root (namespaces, mounts).
#![forbid(unsafe_code)]

mod container;
mod env;
mod node;
mod pods;
mod process;
mod schedule;
mod status;
mod volumes;
mod worker;

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context as _, Result};
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    config::{KubeConfigOptions, Kubeconfig},
    Client, Config,
};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::watch,
};

#[derive(Debug, Parser)]
#[command(name = "stash-test-kubelet")]
struct Args {
    /// Kubeconfig with the rights of a node (the test cluster's admin).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Names of the nodes to register, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "node-1")]
    nodes: Vec<String>,
    /// Directory for pods' volumes, claims, sandboxes and logs.
    #[arg(long)]
    state_dir: PathBuf,
    /// The `stash` binary that containers of our image run.
    #[arg(long)]
    stash_bin: PathBuf,
    /// Our image; containers of any other image run no process. The operator reads the
    /// same setting.
    #[arg(long, env = stash_operator::image::IMAGE_ENV)]
    image: Option<String>,
    /// The version the nodes report.
    #[arg(long, default_value = "v1.37.2")]
    version: String,
}

/// What every part of the kubelet shares.
pub struct Kubelet {
    pub client: Client,
    pub nodes: Vec<String>,
    pub layout: volumes::Layout,
    pub logs: PathBuf,
    pub script: PathBuf,
    pub stash_bin: PathBuf,
    pub image: String,
    pub api_host: String,
    pub api_port: u16,
    pub shutdown: watch::Receiver<bool>,
}

impl Kubelet {
    /// `<state>/logs/<namespace>/<pod>/<container>.log`, appended across restarts and kept
    /// after the pod is gone so tests can show it.
    pub fn log_path(&self, pod: &Pod, container: &str) -> PathBuf {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        self.logs
            .join(ns)
            .join(name)
            .join(format!("{container}.log"))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let kubeconfig = Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("read {}", args.kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let api_host = config.cluster_url.host().unwrap_or("127.0.0.1").to_string();
    let api_port = config.cluster_url.port_u16().unwrap_or(443);
    let client = Client::try_from(config)?;

    let state = std::fs::canonicalize(&args.state_dir)
        .with_context(|| format!("state dir {}", args.state_dir.display()))?;
    let stash_bin = std::fs::canonicalize(&args.stash_bin)
        .with_context(|| format!("stash binary {}", args.stash_bin.display()))?;
    let layout = volumes::Layout {
        pods: state.join("pods"),
        claims: state.join("claims"),
    };
    std::fs::create_dir_all(&layout.pods)?;
    std::fs::create_dir_all(&layout.claims)?;
    let script = process::install_script(&state)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let kubelet = Arc::new(Kubelet {
        client: client.clone(),
        nodes: args.nodes.clone(),
        layout,
        logs: state.join("logs"),
        script,
        stash_bin,
        image: args.image.unwrap_or_else(stash_operator::image::image),
        api_host,
        api_port,
        shutdown: stop_rx,
    });

    node::register(&client, &args.nodes, &args.version).await?;
    tokio::spawn(node::heartbeat(
        client.clone(),
        args.nodes.clone(),
        args.version.clone(),
    ));
    tracing::info!(nodes = ?args.nodes, image = %kubelet.image, "kubelet ready");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stopping: containers get SIGTERM");
        let _ = stop_tx.send(true);
    });
    pods::run(kubelet).await
}
