//! Containers as local processes: `unshare` gives each a private mount and UTS namespace,
//! `sandbox.sh` builds its root and volumes there and execs the command, so the pid we
//! hold is the container's own process and signals reach it directly.

use std::{
    collections::BTreeMap,
    fs::{self, OpenOptions},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context as _, Result};
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::process::{Child, Command};

use crate::volumes::Mount;

const SANDBOX: &str = include_str!("sandbox.sh");

/// Everything a container process needs besides its command.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// A directory of the container's own; the sandbox mounts its tmpfs here.
    pub dir: PathBuf,
    pub hostname: String,
    pub hosts_file: PathBuf,
    pub workdir: String,
    pub mounts: Vec<Mount>,
    pub env: BTreeMap<String, String>,
    pub log: PathBuf,
}

/// Writes the sandbox script once into the kubelet's state directory.
pub fn install_script(state: &Path) -> Result<PathBuf> {
    let path = state.join("sandbox.sh");
    fs::write(&path, SANDBOX).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// The argument vector of `unshare` for one container.
pub fn argv(script: &Path, sb: &Sandbox, command: &[String]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "--mount".into(),
        "--uts".into(),
        "--propagation".into(),
        "private".into(),
        "--".into(),
        "/bin/sh".into(),
        script.display().to_string(),
        sb.dir.display().to_string(),
        sb.hostname.clone(),
        sb.hosts_file.display().to_string(),
        sb.workdir.clone(),
        sb.mounts.len().to_string(),
    ];
    for m in &sb.mounts {
        v.push(m.host.display().to_string());
        v.push(m.container.clone());
        v.push(if m.read_only { "ro" } else { "rw" }.into());
    }
    v.push("--".into());
    v.extend(command.iter().cloned());
    v
}

/// Starts the container; its output goes to the log file, appended across restarts.
pub fn spawn(script: &Path, sb: &Sandbox, command: &[String]) -> Result<Child> {
    if let Some(parent) = sb.log.parent() {
        fs::create_dir_all(parent)?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&sb.log)
        .with_context(|| format!("open log {}", sb.log.display()))?;
    let err = log.try_clone()?;
    fs::create_dir_all(&sb.dir)?;
    let child = Command::new("/usr/bin/unshare")
        .args(argv(script, sb, command))
        .env_clear()
        .envs(&sb.env)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true)
        // A group of its own: signals reach what the container started too.
        .process_group(0)
        .spawn()
        .context("spawn unshare")?;
    Ok(child)
}

/// Signals the container's process group (its main process leads it).
pub fn signal_group(pgid: u32, sig: Signal) {
    let _ = nix::sys::signal::killpg(Pid::from_raw(pgid as i32), sig);
}

/// Waits for the main process; whatever it left behind in its group is killed then, as
/// a container's other processes die with it.
pub async fn wait(child: &mut Child, pgid: u32) -> std::io::Result<std::process::ExitStatus> {
    let status = child.wait().await;
    signal_group(pgid, Signal::SIGKILL);
    status
}

/// SIGTERM, then SIGKILL once `grace` has passed; returns the exit status.
pub async fn stop(
    child: &mut Child,
    pgid: u32,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    signal_group(pgid, Signal::SIGTERM);
    match tokio::time::timeout(grace, wait(child, pgid)).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(pgid, Signal::SIGKILL);
            wait(child, pgid).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_carries_mounts_then_the_command() {
        let sb = Sandbox {
            dir: "/s".into(),
            hostname: "pod".into(),
            hosts_file: "/h".into(),
            workdir: "/".into(),
            mounts: vec![Mount {
                host: "/v".into(),
                container: "/data".into(),
                read_only: true,
            }],
            env: BTreeMap::new(),
            log: "/l".into(),
        };
        let v = argv(
            Path::new("/sb.sh"),
            &sb,
            &["stash".into(), "version".into()],
        );
        let tail: Vec<&str> = v[v.len() - 6..].iter().map(String::as_str).collect();
        assert_eq!(tail, ["/v", "/data", "ro", "--", "stash", "version"]);
        assert_eq!(v[v.len() - 7], "1");
    }
}
