//! How a session's Job ended, read from the Job and its pods: the reason a session
//! fails with when its steps could not say it themselves (an image that cannot be
//! pulled, a deadline, a step killed or crashing before it wrote its result).

use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};

/// Waiting reasons that never resolve by waiting longer.
const STUCK: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Where a Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Running,
    Complete,
    /// Failed, or stuck on something that waiting does not fix; the reason names the
    /// Job, pod and container.
    Failed(String),
}

fn condition(job: &Job, type_: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

/// What went wrong in `pods`' containers (init containers first), if anything did.
fn container_trouble(pods: &[Pod]) -> Option<String> {
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let status = pod.status.as_ref()?;
        let all = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for c in all {
            let state = c.state.as_ref();
            if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
                let reason = w.reason.as_deref().unwrap_or_default();
                if STUCK.contains(&reason) {
                    let message = w.message.as_deref().unwrap_or_default();
                    return Some(format!(
                        "pod {name}: container {}: {reason}: {message}",
                        c.name
                    ));
                }
            }
            if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                if t.exit_code != 0 {
                    let detail = t
                        .message
                        .as_deref()
                        .or(t.reason.as_deref())
                        .map(|m| format!(": {}", m.trim()))
                        .unwrap_or_default();
                    return Some(format!(
                        "pod {name}: container {} exited with code {}{detail}",
                        c.name, t.exit_code
                    ));
                }
            }
        }
    }
    None
}

/// The outcome of `job`, whose pods are `pods`.
pub fn outcome(job: &Job, pods: &[Pod]) -> JobOutcome {
    let name = job.metadata.name.as_deref().unwrap_or_default();
    if condition(job, "Complete").is_some() {
        return JobOutcome::Complete;
    }
    let trouble = container_trouble(pods);
    if let Some((reason, message)) = condition(job, "Failed") {
        let mut why = format!("Job {name} failed: {reason}");
        if !message.is_empty() {
            why.push_str(&format!(" ({message})"));
        }
        if let Some(t) = trouble {
            why.push_str(&format!("; {t}"));
        }
        return JobOutcome::Failed(why);
    }
    match trouble {
        Some(t) if !t.contains("exited with code") => {
            JobOutcome::Failed(format!("Job {name} cannot run: {t}"))
        }
        _ => JobOutcome::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(conditions: serde_json::Value) -> Job {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s-1"},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    fn pod(statuses: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s-1-abcde"},
            "status": statuses
        }))
        .unwrap()
    }

    #[test]
    fn complete_failed_and_running() {
        let done = job(serde_json::json!([{"type": "Complete", "status": "True"}]));
        assert_eq!(outcome(&done, &[]), JobOutcome::Complete);
        assert_eq!(
            outcome(&job(serde_json::json!([])), &[]),
            JobOutcome::Running
        );

        let failed = job(serde_json::json!([{
            "type": "Failed", "status": "True", "reason": "DeadlineExceeded",
            "message": "Job was active longer than specified deadline"
        }]));
        let crashed = pod(serde_json::json!({"initContainerStatuses": [{
            "name": "volume-backup", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "reason": "Error"}}
        }]}));
        assert_eq!(
            outcome(&failed, &[crashed]),
            JobOutcome::Failed(
                "Job s-1 failed: DeadlineExceeded (Job was active longer than specified deadline); pod s-1-abcde: container volume-backup exited with code 137: Error".into()
            )
        );
    }

    #[test]
    fn an_image_that_cannot_be_pulled_fails_at_once() {
        let stuck = pod(serde_json::json!({"containerStatuses": [{
            "name": "pg-backup", "image": "nope:1", "imageID": "", "ready": false,
            "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope:1\""}}
        }]}));
        assert_eq!(
            outcome(&job(serde_json::json!([])), &[stuck]),
            JobOutcome::Failed(
                "Job s-1 cannot run: pod s-1-abcde: container pg-backup: ImagePullBackOff: Back-off pulling image \"nope:1\"".into()
            )
        );
        let starting = pod(serde_json::json!({"containerStatuses": [{
            "name": "pg-backup", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}
        }]}));
        assert_eq!(
            outcome(&job(serde_json::json!([])), &[starting]),
            JobOutcome::Running
        );
    }
}
