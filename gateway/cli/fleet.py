"""`citygw keys generate|rotate`, `citygw config sign|push|diff`: remote config, operator side."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.base import Commands, fail

if TYPE_CHECKING:
    from gateway.hub.client import HubOptions
    from gateway.hub.fleet import Answer, PushOutcome


def add_commands(commands: Commands) -> None:
    """Add the keys and config groups."""
    _add_keys(commands.group("keys", help="config-signing keys"))
    config = commands.group("config", help="remote config: sign, push, diff")
    p = config.add(
        "sign",
        help="sign a config offline; the output is the exact payload for config/set",
        handler=cmd_config_sign,
    )
    p.add_argument("--key", required=True, help="private key file")
    p.add_argument("-o", "--output", help="file for the payload (default: stdout)")
    _add_target(p, required=False)
    _add_signing(p)
    p.set_defaults(signed=False)
    _add_push(config)
    p = config.add(
        "diff",
        help="what changes between two configs, and what a gateway would restart",
        handler=cmd_config_diff,
    )
    p.add_argument("old")
    p.add_argument("new")


def _add_keys(keys: Commands) -> None:
    p = keys.add(
        "generate",
        help="a new Ed25519 key pair: NAME.key and NAME.pub",
        handler=cmd_keys_generate,
    )
    p.add_argument("--out", required=True, help="directory for the key files")
    p.add_argument("--name", default="ops")
    p = keys.add(
        "rotate",
        help="sign a key rotation: gateways then trust exactly the --trust keys",
        handler=cmd_keys_rotate,
    )
    p.add_argument("--key", required=True, help="a private key the gateways trust now")
    p.add_argument("--trust", required=True, action="append", help="public key (repeatable)")
    p.add_argument("--version", type=int, help="must increase (default: now in Unix ms)")
    p.add_argument("-o", "--output", help="file for the payload (default: stdout)")
    _add_target(p, required=False)


def _add_push(config: Commands) -> None:
    p = config.add(
        "push",
        help="publish a signed config and wait for each gateway's "
        "report; exits 1 if any refused or did not answer",
        handler=cmd_config_push,
    )
    p.add_argument("--url", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--key", help="private key file (sign FILE now)")
    p.add_argument("--signed", action="store_true", help="FILE is a payload from config sign")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for reports")
    p.add_argument(
        "--expect",
        type=int,
        help="wait for at least N answers (gateways that have not reported their group yet)",
    )
    p.add_argument("--topic-prefix", default="citygw/v1")
    p.add_argument("--username")
    p.add_argument("--ca-file", help="CA for mqtts:// (password from $CITYGW_HUB_PASSWORD)")
    _add_target(p, required=True)
    _add_signing(p)


def _add_target(p: argparse.ArgumentParser, *, required: bool) -> None:
    target = p.add_mutually_exclusive_group(required=required)
    target.add_argument("--gateway", help="only this gateway may apply it")
    target.add_argument("--group", help="for the gateways of this group (remote_config.groups)")


def _add_signing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", type=int, help="must increase (default: now in Unix ms)")
    p.add_argument(
        "--base-version",
        type=int,
        help="FILE is an RFC 7396 merge patch against this version in force",
    )
    p.add_argument("file", help="config document: TOML, or JSON (a signed payload with --signed)")


def _target(args: argparse.Namespace) -> dict[str, str]:
    if getattr(args, "gateway", None):
        return {"gateway": args.gateway}
    if getattr(args, "group", None):
        return {"group": args.group}
    return {}


def cmd_keys_generate(args: argparse.Namespace) -> int:
    """Write a new key pair and print where it went and its key id; 1 if it exists."""
    from gateway.remote import signing

    try:
        private, public = signing.generate(Path(args.out), args.name)
    except FileExistsError as error:
        fail("keys generate", error)
        return 1
    kid = signing.key_id(signing.load_public(public))
    print(
        f"private key: {private} (keep it offline; mode 0600)\npublic key:  {public} "
        f"(install on gateways, list in [remote_config] trusted_keys)\nkey id:      {kid}"
    )
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Write the signed rotation payload to --output or stdout."""
    from gateway.hub import fleet
    from gateway.remote import signing

    private = signing.load_private(args.key)
    payload = fleet.sign_rotation(private, args.trust, version=args.version, target=_target(args))
    return _write_payload(payload, args.output)


def _write_payload(payload: bytes, output: str | None) -> int:
    if output is None or output == "-":
        sys.stdout.buffer.write(payload + b"\n")
    else:
        Path(output).write_bytes(payload)
        print(
            f"{output}: {len(payload)} bytes, sha256 {hashlib.sha256(payload).hexdigest()}",
            file=sys.stderr,
        )
    return 0


def _signed_config(args: argparse.Namespace) -> bytes:
    from gateway.hub import fleet
    from gateway.remote import signing

    document = fleet.read_document(args.file)
    if args.base_version is None:
        fleet.validate_document(document, file=args.file)
    private = signing.load_private(args.key)
    return fleet.sign_config(
        private,
        document,
        version=args.version,
        target=_target(args),
        base_version=args.base_version,
    )


def cmd_config_sign(args: argparse.Namespace) -> int:
    """Write the signed config payload to --output or stdout."""
    return _write_payload(_signed_config(args), args.output)


def cmd_config_push(args: argparse.Namespace) -> int:
    """Publish the payload, print each gateway's answer; 1 unless every expected one applied."""
    from gateway.hub import fleet

    if args.signed:
        payload = Path(args.file).read_bytes()  # may be anything: the gateways judge it
    elif args.key:
        payload = _signed_config(args)
    else:
        fail(
            "config push",
            "give --key PRIVATE to sign FILE, or --signed for a payload signed offline",
        )
        return 2
    started = time.monotonic()
    try:
        outcome = asyncio.run(
            fleet.push(
                _hub_options(args),
                payload,
                target=_target(args),
                timeout_s=args.timeout,
                expect=args.expect,
                on_answer=_show_answer,
            )
        )
    except LookupError as error:
        fail("config push", error)
        return 1
    except (fleet.BrokerError, ValueError) as error:
        fail("config push", f"broker {args.url}: {error}")
        return 1
    return _report(outcome, args, elapsed_s=time.monotonic() - started)


def _hub_options(args: argparse.Namespace) -> HubOptions:
    from gateway.hub.client import HubOptions

    return HubOptions(
        url=args.url,
        topic_prefix=args.topic_prefix,
        client_id=f"citygw-push-{os.getpid()}",
        username=args.username,
        password=os.environ.get("CITYGW_HUB_PASSWORD") or None,
        ca_file=args.ca_file,
        persistent=False,
    )


def _show_answer(answer: Answer) -> None:
    print(
        f"{answer.after_s:7.2f}s  {answer.gateway:<24} {answer.result:<12} {answer.detail}",
        flush=True,
    )


def _report(outcome: PushOutcome, args: argparse.Namespace, *, elapsed_s: float) -> int:
    """The gateways that did not answer, and the totals; the exit code of the push."""
    for gateway in outcome.missing:
        why = (
            "offline (the retained push waits for it)"
            if gateway in outcome.offline
            else f"no answer within {args.timeout:g} s"
        )
        print(f"{'':8}  {gateway:<24} {'no answer':<12} {why}")
    applied = sum(a.result == "applied" for a in outcome.answers.values())
    print(
        f"{applied} of {len(outcome.expected)} gateways applied it; "
        f"{len(outcome.answers) - applied} refused or rolled back; "
        f"{len(outcome.missing)} did not answer ({elapsed_s:.2f} s)"
    )
    if args.expect is not None and len(outcome.answers) < args.expect:
        print(f"expected {args.expect} answers, got {len(outcome.answers)}", file=sys.stderr)
        return 1
    return 0 if outcome.ok else 1


def cmd_config_diff(args: argparse.Namespace) -> int:
    """Print the key-level differences and what a gateway would restart."""
    from gateway.hub import fleet

    lines = fleet.describe_diff(fleet.read_document(args.old), fleet.read_document(args.new))
    print("\n".join(lines) if lines else "no difference")
    return 0
