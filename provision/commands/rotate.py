"""rotate: change the Authorization value or the API key with no moment where a current holder is refused.

Each rotation is two runs with an overlap window between them:

- ``rotate authorization``: the operator has put the NEW value in the variable
  named by ``authorization_env``; the WAF rule then accepts the old value (read
  back from the rule itself, never stored) OR the new one. Callers switch at
  their pace. ``rotate authorization --finish`` drops the old value.
- ``rotate api-key``: a second key (the next generation, ``<stack>-2``, ...) joins
  the usage plan, CloudFront's origin header ``x-api-key`` switches to it, and
  the run waits until the distribution is Deployed (until then some edges still
  send the old key, which stays valid). ``--finish`` takes the old key out of
  the plan and deletes it, once CloudFront sends only the new one.

Both runs are the deploy pipeline with one step told to open or close the
window (``waf.ensure(rotation=...)``, ``api.ensure(rotation=...)``): same
lock, same state saved after every step, same resumption. The window itself
lives in AWS (two values in the rule, two keys of the stack), so a plain
deploy in between keeps it, with or without the state file, and a crashed
rotation resumes when the same command is run again.
"""
from __future__ import annotations

import argparse
import functools
from dataclasses import replace

from .. import runner
from ..context import locked
from ..errors import DeployError
from ..registry import Step
from ..steps import STEPS, api, cloudfront, waf
from ..together import together

HELP = "Rotate the Authorization value or the API key in two runs, with no outage."
LOCAL = False  # the emulator starts empty and deploy would set the current values: nothing to rotate
LOCKS = True  # --wait: wait for another run of the stack instead of stopping
WHAT = ("api-key", "authorization")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=WHAT,
                        help="authorization: the WAF rule's Authorization value (put the new value in the variable "
                             "named by authorization_env first); api-key: the key CloudFront sends to API Gateway")
    parser.add_argument("--finish", action="store_true",
                        help="close the window: drop the old Authorization value, or retire the old API key; "
                             "without it, open the window (or resume one that was interrupted)")


def run(args, config, session, out) -> int:
    phase = "finish" if args.finish else "start"
    with locked(config, f"rotate {args.what}", session=session, out=out, wait=args.wait) as ctx:
        check = _check_authorization if args.what == "authorization" else _check_api_key
        done, account = together(ctx, lambda c: check(c, phase), lambda c: c.account_id)  # both only read
        if done:
            out.note(done)
            return 0
        out.console.print(f"[bold]Rotating {args.what} of stack {config.stack.name}[/] ({phase}) "
                          f"in account {account}")
        if args.what == "authorization":
            steps = _told(STEPS, "waf", phase)
        elif phase == "start":
            steps = _told(STEPS, "api", phase)
        else:  # the pass keeps the window and waits for CloudFront; then the old key goes
            steps = (*STEPS, Step("api_key_retire", "Old API key retired", _retire_old_keys, _nothing,
                                  needs=("cloudfront",)))
        runner.deploy(ctx, steps)
    out.outputs(ctx.outputs)
    out.console.print(_next_step(args.what, phase, config))
    out.calls(ctx.clients.calls.total, ctx.clients.calls.changing)
    return 0


def _told(steps, name: str, phase: str) -> tuple[Step, ...]:
    """The deploy steps, with the one named told to open ("start") or close ("finish") its window."""
    return tuple(replace(step, ensure=functools.partial(step.ensure, rotation=phase)) if step.name == name
                 else step for step in steps)


def _nothing(ctx) -> None:
    """Retiring leaves nothing for teardown beyond what the api step removes."""


def _check_authorization(ctx, phase: str) -> str | None:
    """Stop a rotation that would refuse someone; a note when there is nothing to do."""
    env = ctx.config.access.authorization.env
    acl = waf.current_acl(ctx)
    if acl is None:
        raise DeployError(f"stack {ctx.stack} has no web ACL: run deploy first")
    accepted, new = waf.accepted_values(acl), ctx.config.access.authorization.value.encode()
    if phase == "finish":
        if new not in accepted:
            raise DeployError(f"the web ACL does not accept the value in ${env}: finishing would refuse every "
                              f"caller. Set ${env} to the new value the rotation started with, then run again")
        return None if len(accepted) > 1 else "nothing to finish: the web ACL accepts only the value in $" + env
    if accepted == [new]:
        raise DeployError(f"the web ACL already accepts only the value in ${env}: put the NEW value in ${env} "
                          "first, then run rotate authorization")
    if len(accepted) > 1 and new not in accepted:
        raise DeployError(f"a rotation to another value is under way (the web ACL accepts two values, neither is "
                          f"${env}): set ${env} to that new value and run rotate authorization --finish first")
    return None


def _check_api_key(ctx, phase: str) -> str | None:
    keys = api.stack_keys(ctx)
    if not keys:
        raise DeployError(f"stack {ctx.stack} has no API key: run deploy first")
    if phase == "finish":
        return None if len(keys) > 1 else f"nothing to finish: stack {ctx.stack} has one API key, {keys[0]['id']}"
    wanted = ctx.config.api.key
    if len(keys) == 1 and wanted is not None:
        current = ctx.client("apigateway").get_api_key(apiKey=keys[0]["id"], includeValue=True)["value"]
        if current == wanted.value:
            raise DeployError(f"[api] key_env names the value the current key already has: put the NEW value in "
                              f"${wanted.env} first (or drop key_env to let API Gateway generate one)")
    return None


def _retire_old_keys(ctx) -> None:
    """Only once CloudFront sends the newest key everywhere (the pass before waited for Deployed)."""
    newest = api.stack_keys(ctx)[-1]
    if not cloudfront.sends_key(ctx, newest["id"]):
        raise DeployError("CloudFront does not send the newest API key everywhere yet; run rotate api-key "
                          "(without --finish) to switch it, then --finish")
    api.retire_old_keys(ctx)


def _next_step(what: str, phase: str, config) -> str:
    if phase == "finish":
        return f"Rotation of {what} finished: only the new value is accepted."
    if what == "authorization":
        return (f"Both values are accepted now. Give callers the new value (${config.access.authorization.env}); "
                f"once none sends the old one: rds-edge-api rotate authorization --finish")
    return ("CloudFront sends the new API key everywhere; the old one is still accepted. "
            "Next: rds-edge-api rotate api-key --finish")
