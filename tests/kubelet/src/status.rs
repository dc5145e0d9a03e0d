//! A pod's status from the state of its containers: phase, conditions and container
//! statuses as a real kubelet reports them. Pure: the worker keeps the records, this turns
//! them into the object the API server stores.

use k8s_openapi::{
    api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};

/// The loopback address every pod and node reports: containers share the host's network.
pub const LOOPBACK: &str = "127.0.0.1";

/// What one container is doing now.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started: Timestamp,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        started: Timestamp,
        finished: Timestamp,
    },
}

/// One container's record, kept by the pod worker across restarts.
#[derive(Debug, Clone)]
pub struct Record {
    pub name: String,
    pub image: String,
    pub state: State,
    pub last: Option<State>,
    pub restarts: i32,
    /// An init container with `restartPolicy: Always` (a native sidecar): it counts as done
    /// once it runs, and keeps running beside the main containers.
    pub sidecar: bool,
}

impl Record {
    pub fn new(name: &str, image: &str, sidecar: bool) -> Self {
        Record {
            name: name.to_string(),
            image: image.to_string(),
            state: State::Waiting {
                reason: "PodInitializing".into(),
                message: None,
            },
            last: None,
            restarts: 0,
            sidecar,
        }
    }

    pub fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self.state {
            State::Terminated { exit_code, .. } => Some(exit_code),
            _ => None,
        }
    }

    /// An init container is done when it exited 0, or (a sidecar) once it runs.
    pub fn init_done(&self) -> bool {
        if self.sidecar {
            self.running() || self.restarts > 0
        } else {
            self.exit_code() == Some(0)
        }
    }
}

/// Whether the pod has reached a terminal phase (nothing of it runs any more).
pub fn finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// The pod's phase from its containers and restart policy.
pub fn phase(restart_policy: &str, init: &[Record], main: &[Record]) -> &'static str {
    let never = restart_policy == "Never";
    if init
        .iter()
        .any(|c| !c.sidecar && c.exit_code().is_some_and(|e| e != 0))
        && never
    {
        return "Failed";
    }
    if !init.iter().all(Record::init_done) {
        return "Pending";
    }
    if main.is_empty()
        || main
            .iter()
            .any(|c| matches!(c.state, State::Waiting { .. }))
    {
        let all_started_once = main.iter().all(|c| c.restarts > 0 || c.last.is_some());
        if main.is_empty() || !all_started_once {
            return "Pending";
        }
        return "Running";
    }
    if main.iter().any(Record::running) || restart_policy == "Always" {
        return "Running";
    }
    // Every main container has terminated and none will be restarted.
    if main.iter().all(|c| c.exit_code() == Some(0)) {
        "Succeeded"
    } else if never {
        "Failed"
    } else {
        // OnFailure: the failed ones are being restarted.
        "Running"
    }
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    previous: &[PodCondition],
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    PodCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: if ok { None } else { reason.map(str::to_string) },
        last_transition_time: Some(since),
        ..PodCondition::default()
    }
}

fn container_state(state: &State) -> ContainerState {
    match state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..ContainerState::default()
        },
        State::Running { started } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started)),
            }),
            ..ContainerState::default()
        },
        State::Terminated {
            exit_code,
            signal,
            started,
            finished,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                signal: *signal,
                reason: Some(
                    if *exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    }
                    .to_string(),
                ),
                started_at: Some(Time(*started)),
                finished_at: Some(Time(*finished)),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        },
    }
}

fn container_status(pod_uid: &str, r: &Record) -> ContainerStatus {
    ContainerStatus {
        name: r.name.clone(),
        image: r.image.clone(),
        image_id: format!("stash-test://{}", r.image),
        container_id: Some(format!("stash-test://{pod_uid}/{}", r.name)),
        ready: r.running(),
        started: Some(r.running()),
        restart_count: r.restarts,
        state: Some(container_state(&r.state)),
        last_state: r.last.as_ref().map(container_state),
        ..ContainerStatus::default()
    }
}

/// The whole status object. `previous` keeps the transition times of unchanged conditions.
pub fn pod_status(
    pod_uid: &str,
    restart_policy: &str,
    init: &[Record],
    main: &[Record],
    start_time: Timestamp,
    previous: &[PodCondition],
) -> PodStatus {
    let phase = phase(restart_policy, init, main);
    let initialized = init.iter().all(Record::init_done);
    let ready = phase == "Running" && main.iter().all(Record::running);
    let not_ready = if phase == "Succeeded" || phase == "Failed" {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(vec![
            condition("PodScheduled", true, None, previous),
            condition(
                "Initialized",
                initialized,
                Some("ContainersNotInitialized"),
                previous,
            ),
            condition("ContainersReady", ready, Some(not_ready), previous),
            condition("Ready", ready, Some(not_ready), previous),
        ]),
        host_ip: Some(LOOPBACK.into()),
        host_ips: Some(vec![HostIP {
            ip: LOOPBACK.into(),
        }]),
        pod_ip: Some(LOOPBACK.into()),
        pod_ips: Some(vec![PodIP {
            ip: LOOPBACK.into(),
        }]),
        start_time: Some(Time(start_time)),
        init_container_statuses: Some(init.iter().map(|r| container_status(pod_uid, r)).collect()),
        container_statuses: Some(main.iter().map(|r| container_status(pod_uid, r)).collect()),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, state: State) -> Record {
        Record {
            state,
            ..Record::new(name, "img", false)
        }
    }

    fn exited(code: i32) -> State {
        let t = Timestamp::now();
        State::Terminated {
            exit_code: code,
            signal: None,
            started: t,
            finished: t,
        }
    }

    fn running() -> State {
        State::Running {
            started: Timestamp::now(),
        }
    }

    #[test]
    fn phases_follow_containers_and_policy() {
        let waiting = rec("a", Record::new("a", "i", false).state);
        assert_eq!(
            phase("Always", &[], std::slice::from_ref(&waiting)),
            "Pending"
        );
        assert_eq!(phase("Always", &[], &[rec("a", running())]), "Running");
        assert_eq!(phase("Never", &[], &[rec("a", exited(0))]), "Succeeded");
        assert_eq!(phase("Never", &[], &[rec("a", exited(2))]), "Failed");
        assert_eq!(
            phase("Never", &[], &[rec("a", exited(0)), rec("b", running())]),
            "Running"
        );
        assert_eq!(phase("OnFailure", &[], &[rec("a", exited(0))]), "Succeeded");
    }

    #[test]
    fn a_failed_init_container_holds_the_pod() {
        let main = [rec("main", Record::new("m", "i", false).state)];
        assert_eq!(phase("Never", &[rec("init", exited(1))], &main), "Failed");
        assert_eq!(phase("Always", &[rec("init", exited(1))], &main), "Pending");
        assert_eq!(phase("Always", &[rec("init", exited(0))], &main), "Pending");
        let mut sidecar = rec("side", running());
        sidecar.sidecar = true;
        assert_eq!(
            phase("Always", &[sidecar], &[rec("main", running())]),
            "Running"
        );
    }

    #[test]
    fn ready_only_when_every_main_container_runs() {
        let st = pod_status(
            "u",
            "Always",
            &[rec("i", exited(0))],
            &[rec("a", running()), rec("b", running())],
            Timestamp::now(),
            &[],
        );
        let ready = st
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.unwrap().status, "True");
        let st = pod_status(
            "u",
            "Never",
            &[],
            &[rec("a", exited(0))],
            Timestamp::now(),
            &[],
        );
        let ready = st
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.unwrap().reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let old = Time(Timestamp::from_second(1_000_000).unwrap());
        let previous = vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(old.clone()),
            ..PodCondition::default()
        }];
        let st = pod_status(
            "u",
            "Always",
            &[],
            &[rec("a", running())],
            Timestamp::now(),
            &previous,
        );
        let ready = st
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.unwrap().last_transition_time, Some(old));
    }
}
