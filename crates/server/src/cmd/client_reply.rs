//! CLIENT REPLY ON|OFF|SKIP: a client that asks for no replies still gets
//! its pub/sub messages and (un)subscribe confirmations, as in Redis, where
//! pushes bypass the switch.

use resp::Request;
use transport::Output;

use super::{After, CmdError, CmdResult, Ctx};
use crate::args::eq;
use crate::client::Client;
use crate::server::Shared;

/// A client's reply switch.
#[derive(Debug, Default)]
pub(crate) struct Replies {
    /// CLIENT REPLY OFF: no replies until ON.
    off: bool,
    /// CLIENT REPLY SKIP: no reply to the next command.
    skip: bool,
    /// While a command runs silenced: where its pushes go, kept when its
    /// replies are dropped.
    pub(crate) pushes: Option<Output>,
}

impl Replies {
    /// Whether the next command runs silenced ([`run_silenced`]).
    pub(crate) fn silenced(&self) -> bool {
        (self.off || self.skip) && self.pushes.is_none()
    }
}

/// Runs `req` with its replies dropped and its pushes kept. CLIENT REPLY ON
/// is answered (it turns replies back on before it answers), and so is a
/// RESET that ends OFF (but not one that SKIP silences), as in Redis.
pub(crate) fn run_silenced(
    shared: &Shared,
    client: &mut Client,
    out: &mut Output,
    req: &Request,
) -> After {
    // SKIP silences one command; one that sets it again silences the next.
    let skipped = std::mem::take(&mut client.replies.skip);
    client.replies.pushes = Some(Output::new());
    let mut replies = Output::new();
    let after = super::execute(shared, client, &mut replies, req);
    if let Some(pushes) = client.replies.pushes.take() {
        out.append(pushes);
    }
    let named = |i: usize, word: &str| req.get(i).is_some_and(|a| eq(a, word));
    // Refused (a RESP2 subscriber's CLIENT REPLY ON), it left them off.
    let answered = !client.replies.off
        && ((named(0, "client") && named(1, "reply") && named(2, "on"))
            || (named(0, "reset") && !skipped));
    if answered {
        out.append(replies);
    }
    after
}

/// CLIENT REPLY ON|OFF|SKIP; other CLIENT subcommands go to their handler.
pub(super) fn client(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    if !eq(&req[1], "reply") {
        return super::tracking::client(ctx, req);
    }
    let Some(mode) = req.get(2) else {
        return Err(super::keys::subcommand_arity("client", "reply"));
    };
    let replies = &mut ctx.client.replies;
    match mode {
        m if eq(m, "on") => {
            replies.off = false;
            replies.skip = false;
            ctx.reply.ok();
        }
        m if eq(m, "off") => replies.off = true,
        // Ignored while OFF, as in Redis.
        m if eq(m, "skip") => replies.skip = !replies.off,
        _ => return Err(CmdError::Syntax),
    }
    Ok(())
}

/// RESET turns replies back on.
pub(super) fn reset(client: &mut Client) {
    client.replies.off = false;
    client.replies.skip = false;
}
