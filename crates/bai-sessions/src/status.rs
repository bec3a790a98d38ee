//! The status rules of sessions and kernels (spec §4.11): which transitions are allowed, and the
//! status a session derives from its kernels.
//!
//! Pure rules over the status enums of `bai-db-models`; no I/O.

use bai_db_models::entities::enums::{KernelStatus, SessionStatus};

/// `SESSION_STATUS_TRANSITION_MAP`: whether a session may go from `from` to `to` when its status
/// is recomputed from its kernels. (Direct setters, such as cancelling a pending session, do not
/// consult it.)
pub fn session_may_go(from: SessionStatus, to: SessionStatus) -> bool {
    use SessionStatus::*;
    let allowed: &[SessionStatus] = match from {
        Pending => &[Scheduled, Terminating, Terminated, Error, Cancelled],
        Scheduled => &[Pulling, Preparing, Terminated, Error, Cancelled],
        Pulling => &[
            Preparing,
            Running,
            RunningDegraded,
            Terminated,
            Error,
            Cancelled,
        ],
        Preparing => &[
            Pulling,
            Running,
            RunningDegraded,
            Terminating,
            Terminated,
            Error,
            Cancelled,
        ],
        Running => &[Restarting, RunningDegraded, Terminating, Terminated, Error],
        Restarting => &[Running, RunningDegraded, Terminating, Terminated, Error],
        RunningDegraded => &[Running, Terminating, Terminated, Error],
        Terminating => &[Terminated, Error],
        Error => &[Terminated],
        Terminated | Cancelled => &[],
    };
    allowed.contains(&to)
}

/// `KERNEL_STATUS_TRANSITION_MAP`: whether a kernel may go from `from` to `to` on a lifecycle
/// event. (Marking a kernel terminated does not consult it.)
pub fn kernel_may_go(from: KernelStatus, to: KernelStatus) -> bool {
    use KernelStatus::*;
    match from {
        Pending => !matches!(to, Pending | Terminated),
        Scheduled => !matches!(to, Scheduled | Pending | Terminated),
        Preparing | Building | Pulling | Restarting | Resizing | Suspended => {
            to != from && !matches!(to, Pending | Scheduled | Terminated)
        }
        Running => matches!(to, Restarting | Resizing | Terminating | Terminated | Error),
        Terminating => matches!(to, Terminated | Error),
        Terminated | Error | Cancelled => false,
    }
}

/// The session status a kernel status stands for (`KernelStatus` → `SessionStatus`).
pub fn session_status_of(kernel: KernelStatus) -> SessionStatus {
    match kernel {
        KernelStatus::Pending => SessionStatus::Pending,
        KernelStatus::Scheduled => SessionStatus::Scheduled,
        KernelStatus::Preparing | KernelStatus::Building => SessionStatus::Preparing,
        KernelStatus::Pulling => SessionStatus::Pulling,
        KernelStatus::Running | KernelStatus::Resizing => SessionStatus::Running,
        KernelStatus::Restarting => SessionStatus::Restarting,
        KernelStatus::Suspended | KernelStatus::Error => SessionStatus::Error,
        KernelStatus::Terminating => SessionStatus::Terminating,
        KernelStatus::Terminated => SessionStatus::Terminated,
        KernelStatus::Cancelled => SessionStatus::Cancelled,
    }
}

/// `determine_session_status` (24.03): the main kernel's status, unless it is RUNNING or
/// TERMINATED and a sibling is still on its way (PULLING, PREPARING, TERMINATING) or failed
/// (ERROR).
pub fn session_status_from_kernels(
    main: KernelStatus,
    siblings: impl IntoIterator<Item = KernelStatus>,
) -> SessionStatus {
    let status = session_status_of(main);
    match status {
        SessionStatus::Running => {
            for sibling in siblings {
                match sibling {
                    KernelStatus::Pulling => return SessionStatus::Pulling,
                    KernelStatus::Preparing => return SessionStatus::Preparing,
                    KernelStatus::Terminating | KernelStatus::Error => return SessionStatus::Error,
                    _ => {}
                }
            }
            status
        }
        SessionStatus::Terminated => {
            for sibling in siblings {
                match sibling {
                    KernelStatus::Terminating => return SessionStatus::Terminating,
                    KernelStatus::Error => return SessionStatus::Error,
                    _ => {}
                }
            }
            status
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Iterable;

    #[test]
    fn finished_sessions_and_kernels_go_nowhere() {
        for to in SessionStatus::iter() {
            assert!(!session_may_go(SessionStatus::Terminated, to));
            assert!(!session_may_go(SessionStatus::Cancelled, to));
        }
        for to in KernelStatus::iter() {
            for from in [
                KernelStatus::Terminated,
                KernelStatus::Error,
                KernelStatus::Cancelled,
            ] {
                assert!(!kernel_may_go(from, to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn the_maps_are_the_references() {
        use KernelStatus as K;
        use SessionStatus as S;
        assert!(session_may_go(S::Pending, S::Scheduled));
        assert!(!session_may_go(S::Pending, S::Running));
        assert!(session_may_go(S::Preparing, S::Running));
        assert!(session_may_go(S::Scheduled, S::Preparing));
        assert!(!session_may_go(S::Running, S::Preparing));
        assert!(session_may_go(S::Error, S::Terminated));
        assert!(!session_may_go(S::Terminating, S::Running));

        assert!(kernel_may_go(K::Pending, K::Scheduled));
        assert!(!kernel_may_go(K::Pending, K::Terminated));
        assert!(kernel_may_go(K::Preparing, K::Pulling));
        assert!(kernel_may_go(K::Pulling, K::Running));
        assert!(!kernel_may_go(K::Pulling, K::Pulling));
        assert!(!kernel_may_go(K::Preparing, K::Scheduled));
        assert!(kernel_may_go(K::Running, K::Terminating));
        assert!(!kernel_may_go(K::Running, K::Preparing));
        assert!(kernel_may_go(K::Terminating, K::Terminated));
    }

    #[test]
    fn a_session_follows_its_main_kernel_and_waits_for_its_siblings() {
        use KernelStatus as K;
        use SessionStatus as S;
        assert_eq!(session_status_from_kernels(K::Running, []), S::Running);
        assert_eq!(session_status_from_kernels(K::Building, []), S::Preparing);
        assert_eq!(session_status_from_kernels(K::Resizing, []), S::Running);
        assert_eq!(session_status_from_kernels(K::Suspended, []), S::Error);
        assert_eq!(
            session_status_from_kernels(K::Running, [K::Running, K::Pulling]),
            S::Pulling
        );
        assert_eq!(
            session_status_from_kernels(K::Running, [K::Preparing]),
            S::Preparing
        );
        assert_eq!(
            session_status_from_kernels(K::Running, [K::Terminating]),
            S::Error
        );
        assert_eq!(
            session_status_from_kernels(K::Terminated, [K::Terminating]),
            S::Terminating
        );
        assert_eq!(
            session_status_from_kernels(K::Terminated, [K::Terminated, K::Error]),
            S::Error
        );
        // Only a RUNNING or TERMINATED main kernel looks at its siblings.
        assert_eq!(
            session_status_from_kernels(K::Preparing, [K::Error]),
            S::Preparing
        );
    }
}
