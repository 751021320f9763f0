"""kubectl paydeck: watch and steer the canary rollouts of PaymentServices.

  kubectl paydeck get NAME [--watch]     the rollout as a tree: revisions, pods, gates, analysis
  kubectl paydeck promote NAME [--full]  skip the current step (--full: every remaining step)
  kubectl paydeck abort NAME             back to the stable revision
  kubectl paydeck retry NAME             start an aborted rollout over

Commands are written to status.command through the status subresource; spec is never touched.
"""

from __future__ import annotations

import argparse
import getpass
import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from payment_operator.builders.meta import LABEL_INSTANCE, LABEL_REVISION
from payment_operator.cli import commands, render
from payment_operator.kube.client import Kube, KubeError, Obj
from payment_operator.kube.resources import PAYMENT_SERVICE, Resource

PROG = "kubectl paydeck"
WATCH_SECONDS = 2.0

DEPLOYMENT = Resource("apps/v1", "Deployment", "deployments")
POD = Resource("v1", "Pod", "pods")
JOB = Resource("batch/v1", "Job", "jobs")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
CLEAR_SCREEN = "\x1b[H\x1b[2J"


class PluginError(Exception):
    """A failure to report in one line, exit code 1."""


# ---- kube access ----------------------------------------------------------------------------


@dataclass
class Target:
    """The API server, the namespace and who we are in the kubeconfig."""

    kube: Kube
    namespace: str
    kubeconfig_user: str = ""


def _context(kubeconfig: str | None, name: str | None) -> dict[str, Any]:
    """The kubeconfig context named (or the current one), as ``{name, context: {...}}``."""
    contexts, current = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
    if name is None:
        if not current:
            raise PluginError("the kubeconfig has no current context: use --context")
        return dict(current)
    for ctx in contexts:
        if ctx.get("name") == name:
            return dict(ctx)
    raise PluginError(f'context "{name}" not found in the kubeconfig')


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Target:
    """The API client, like kubectl: ``--kubeconfig`` (else $KUBECONFIG, else
    ~/.kube/config; in a pod without one, its service account), ``--context``, and the
    namespace from ``-n``, else the context's, else ``default``."""
    configuration = k8s.Configuration()
    try:
        ctx = _context(kubeconfig, context)
    except k8s_config.ConfigException as err:
        if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise PluginError(f"cannot load the kubeconfig: {err}") from err
        k8s_config.load_incluster_config(client_configuration=configuration)
        configuration.retries = False
        default = (SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
                   if SERVICE_ACCOUNT_NAMESPACE.exists() else "default")
        return Target(Kube(k8s.ApiClient(configuration)), namespace or default)
    try:
        k8s_config.load_kube_config(config_file=kubeconfig, context=ctx["name"],
                                    client_configuration=configuration, persist_config=False)
    except k8s_config.ConfigException as err:
        raise PluginError(f"cannot load the kubeconfig: {err}") from err
    configuration.retries = False  # fail fast when the API server is down
    settings = ctx.get("context") or {}
    return Target(
        Kube(k8s.ApiClient(configuration)),
        namespace or settings.get("namespace") or "default",
        str(settings.get("user") or ""),
    )


def whoami(target: Target) -> str:
    """The user name the API server knows us by (SelfSubjectReview), else the kubeconfig's
    user, else $USER."""
    try:
        review = target.kube.request(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            timeout=(5, 10),
        )
        name = render.dig(review, "status", "userInfo", "username")
        if name:
            return str(name)
    except KubeError:
        pass
    if target.kubeconfig_user:
        return target.kubeconfig_user
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def get_service(target: Target, name: str) -> Obj:
    ps = target.kube.get(PAYMENT_SERVICE, target.namespace, name)
    if ps is None:
        raise PluginError(f'Error from server (NotFound): paymentservices.paydeck.dev "{name}" '
                          f'not found in namespace "{target.namespace}"')
    return ps


def _controlled_by(obj: Obj, uid: str | None) -> bool:
    """Whether the object's controller is the PaymentService (not someone's look-alike)."""
    if not uid:
        return True
    refs = render.dig(obj, "metadata", "ownerReferences") or []
    return any(r.get("controller") and r.get("uid") == uid for r in refs)


def fetch(target: Target, name: str) -> tuple[Obj, list[Obj], list[Obj], Obj | None]:
    """The PaymentService, its revision Deployments and pods, and its migration Job."""
    ps = get_service(target, name)
    uid = render.dig(ps, "metadata", "uid")
    selector = f"{LABEL_INSTANCE}={name},{LABEL_REVISION}"
    deployments = [d for d in target.kube.list_objects(DEPLOYMENT, target.namespace, selector)
                   if _controlled_by(d, uid)]
    pods = target.kube.list_objects(POD, target.namespace, selector)
    job_name = render.dig(ps, "status", "migration", "job")
    job = target.kube.get(JOB, target.namespace, str(job_name)) if job_name else None
    return ps, deployments, pods, job


# ---- subcommands ----------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def show(target: Target, name: str) -> str:
    ps, deployments, pods, job = fetch(target, name)
    return render.render(ps, deployments, pods, job, now=_now())


def watch(frame: Callable[[], str], out: TextIO, interval: float = WATCH_SECONDS,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Draw ``frame()`` every ``interval`` seconds until Ctrl-C (then exit code 0).

    On a terminal each frame replaces the last; otherwise frames follow each other.
    Failures (the API server away, the object deleted) are shown and watching goes on.
    """
    tty = out.isatty()
    try:
        while True:
            try:
                text = frame()
            except (PluginError, KubeError) as err:
                text = f"{_error_text(err)}\n(watching; Ctrl-C to stop)\n"
            out.write((CLEAR_SCREEN + text) if tty else text + "\n")
            out.flush()
            sleep(interval)
    except KeyboardInterrupt:
        out.write("\n")
        out.flush()
        return 0


def send(target: Target, name: str, action: str, *, force: bool, out: TextIO,
         user: str | None = None, now: Callable[[], datetime] = _now) -> int:
    """Write the command (refused when it makes no sense now, unless forced)."""
    who = user if user is not None else whoami(target)
    attempts = 3
    for attempt in range(attempts):
        ps = get_service(target, name)
        try:
            request = commands.prepare(action, ps, now=now(), user=who, force=force)
        except commands.Refused as refused:
            raise PluginError(f"refusing to {action} paymentservice {name}: {refused}"
                              " (--force writes it anyway)") from None
        version = render.dig(ps, "metadata", "resourceVersion")
        try:
            target.kube.patch_status(PAYMENT_SERVICE, target.namespace, name,
                                     request.patch(version))
        except KubeError as err:
            if err.status == 409 and attempt < attempts - 1:
                continue  # the status changed since we read it: look again
            raise
        command = request.command()
        out.write(f"paymentservice {name} (namespace {target.namespace}): {action} requested "
                  f"at {command['requestedAt']} by {command['requestedBy']}\n"
                  f"  the operator will {request.summary}\n")
        if request.forced:
            out.write(f"  forced, although {request.forced}\n")
        if request.note:
            out.write(f"  note: {request.note}\n")
        return 0
    raise AssertionError("unreachable")  # pragma: no cover


# ---- command line ---------------------------------------------------------------------------


def _kube_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--kubeconfig", default=default,
                        help="path to the kubeconfig file (default: $KUBECONFIG or "
                             "~/.kube/config)")
    parser.add_argument("--context", default=default, help="the kubeconfig context to use")
    parser.add_argument("-n", "--namespace", default=default,
                        help="namespace (default: the context's namespace, else default)")


def parser() -> argparse.ArgumentParser:
    # The kube flags go before or after the subcommand, as with kubectl.
    flags = argparse.ArgumentParser(add_help=False)
    _kube_flags(flags, argparse.SUPPRESS)
    main_parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _kube_flags(main_parser, None)
    sub = main_parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    get = sub.add_parser("get", parents=[flags], help="show a PaymentService's rollout")
    get.add_argument("name", metavar="NAME")
    get.add_argument("-w", "--watch", action="store_true",
                     help=f"redraw every {WATCH_SECONDS:.0f} s until Ctrl-C")

    helps = {
        "promote": "skip the current pause or analysis step (--full: all remaining steps)",
        "abort": "abort the canary: its pods go, the stable revision serves alone",
        "retry": "start an aborted rollout over from its first step",
    }
    for verb, text in helps.items():
        cmd = sub.add_parser(verb, parents=[flags], help=text, description=text)
        cmd.add_argument("name", metavar="NAME")
        if verb == "promote":
            cmd.add_argument("--full", action="store_true",
                             help="skip every remaining step and make the canary stable")
        cmd.add_argument("--force", action="store_true",
                         help="write the command even when it makes no sense now")
    return main_parser


def _error_text(err: Exception) -> str:
    if isinstance(err, KubeError):
        if err.status == 0:
            return f"error: cannot reach the API server: {err.message}"
        return f"Error from server ({err.reason}): {err.message}"
    return str(err)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")  # a terminal that cannot show ✔ gets ?
    try:
        target = connect(args.kubeconfig, args.context, args.namespace)
        if args.command == "get":
            if args.watch:
                return watch(lambda: show(target, args.name), sys.stdout)
            sys.stdout.write(show(target, args.name))
            return 0
        action = "promoteFull" if args.command == "promote" and args.full else args.command
        return send(target, args.name, action, force=args.force, out=sys.stdout)
    except (PluginError, KubeError) as err:
        sys.stderr.write(_error_text(err) + "\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
