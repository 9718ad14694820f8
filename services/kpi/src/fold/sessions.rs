//! Sessions: runs of interactions with gaps no longer than the timeout, counted at their start
//! as a bounce until a second interaction or a conversion, and engaged once they qualify.

use super::folder::{Ctx, emit};
use super::observations::Observations;
use super::state::{CustomerState, Row, Session};
use crate::fields::stat;

/// Whether `session` qualifies as engaged.
fn is_engaged(ctx: &Ctx<'_>, session: &Session) -> bool {
    session.converted
        || (session.events >= ctx.config.engaged_session_min_events
            && session.last - session.start >= ctx.config.engaged_min_secs())
}

/// Assigns an interaction to the current session or starts a new one.
///
/// An interaction more than the timeout before the current session belongs to a session that
/// has ended (and was counted, or is lost with the state): it is left out of the session
/// figures rather than counted as a session a second time.
pub(super) fn on_interaction(
    ctx: &Ctx<'_>,
    state: &mut CustomerState,
    row: &Row,
    converts: bool,
    out: &mut Observations,
) {
    let timeout = ctx.config.session_timeout();
    if let Some(session) = state.session.as_mut() {
        let joins = ctx.at >= session.start.saturating_sub(timeout)
            && ctx.at <= session.last.saturating_add(timeout);
        if joins {
            session.events = session.events.saturating_add(1);
            session.start = session.start.min(ctx.at);
            session.last = session.last.max(ctx.at);
            session.converted |= converts;
            update(ctx, session, out);
            return;
        }
        if ctx.at < session.start {
            return;
        }
    }
    let mut session = Session {
        start: ctx.at,
        last: ctx.at,
        events: 1,
        converted: converts,
        row: Some(row.clone()),
        at: ctx.at,
        ..Session::default()
    };
    emit(ctx.tenant, ctx.at, stat::SESSIONS, row, 1.0, out);
    if !converts {
        session.bounced = true;
        emit(ctx.tenant, ctx.at, stat::BOUNCED_SESSIONS, row, 1.0, out);
    }
    update(ctx, &mut session, out);
    state.session = Some(session);
}

/// Takes back the bounce and counts the engagement once the session qualifies.
fn update(ctx: &Ctx<'_>, session: &mut Session, out: &mut Observations) {
    let Some(row) = session.row.clone() else {
        return;
    };
    if session.bounced && (session.events > 1 || session.converted) {
        session.bounced = false;
        emit(
            ctx.tenant,
            session.at,
            stat::BOUNCED_SESSIONS,
            &row,
            -1.0,
            out,
        );
    }
    if !session.engaged && is_engaged(ctx, session) {
        session.engaged = true;
        emit(
            ctx.tenant,
            session.at,
            stat::ENGAGED_SESSIONS,
            &row,
            1.0,
            out,
        );
    }
}
