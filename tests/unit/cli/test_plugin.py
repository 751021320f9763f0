"""The plugin's command line and I/O around a fake API (kubeconfig files, no cluster)."""

from __future__ import annotations

import copy
import io
from datetime import datetime

import pytest
import yaml
from payment_operator.cli import plugin
from payment_operator.kube.client import KubeError

from tests.unit.cli.objects import NAME, NOW, canary_status, deployment, healthy_status, service

pytestmark = pytest.mark.unit


def kubeconfig(tmp_path, current="dev", namespace_of_dev="payments"):
    def ctx(name, namespace=None):
        context = {"cluster": "local", "user": f"{name}-user"}
        if namespace:
            context["namespace"] = namespace
        return {"name": name, "context": context}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": "local", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "dev-user", "user": {"token": "t"}},
                  {"name": "ops-user", "user": {"token": "t"}}],
        "contexts": [ctx("dev", namespace_of_dev), ctx("ops")],
    }))
    return str(path)


def test_namespace_from_flag_then_context_then_default(tmp_path):
    config = kubeconfig(tmp_path)
    target = plugin.connect(config, None, None)
    assert target.namespace == "payments" and target.kubeconfig_user == "dev-user"
    assert target.kube.api_client.configuration.host == "https://127.0.0.1:6443"
    assert plugin.connect(config, None, "other").namespace == "other"
    ops = plugin.connect(config, "ops", None)
    assert ops.namespace == "default" and ops.kubeconfig_user == "ops-user"


def test_unknown_context_and_missing_kubeconfig(tmp_path):
    with pytest.raises(plugin.PluginError, match='context "nope" not found'):
        plugin.connect(kubeconfig(tmp_path), "nope", None)
    with pytest.raises(plugin.PluginError, match="cannot load the kubeconfig"):
        plugin.connect(str(tmp_path / "missing"), None, None)


def test_flags_before_or_after_the_subcommand():
    args = plugin.parser().parse_args(["-n", "a", "--context", "c", "get", NAME, "--watch"])
    assert (args.namespace, args.context, args.kubeconfig, args.watch) == ("a", "c", None, True)
    args = plugin.parser().parse_args(["promote", NAME, "--full", "-n", "b", "--kubeconfig=k"])
    assert (args.command, args.full, args.force, args.namespace, args.kubeconfig) == (
        "promote", True, False, "b", "k")
    args = plugin.parser().parse_args(["retry", NAME, "--force"])
    assert args.force and args.namespace is None
    with pytest.raises(SystemExit):
        plugin.parser().parse_args(["abort", NAME, "--full"])


class FakeKube:
    """Enough of payment_operator.kube.client.Kube for the plugin."""

    def __init__(self, ps, conflicts=0, lists=None):
        self.ps, self.conflicts, self.lists = ps, conflicts, lists or {}
        self.patches = []
        self.requests = []

    def get(self, resource, namespace, name):
        if resource.kind == "PaymentService" and name == NAME:
            return copy.deepcopy(self.ps)
        return None

    def list_objects(self, resource, namespace, selector=""):
        self.requests.append((resource.kind, selector))
        return self.lists.get(resource.kind, [])

    def patch_status(self, resource, namespace, name, patch):
        self.patches.append(patch)
        if self.conflicts:
            self.conflicts -= 1
            self.ps["metadata"]["resourceVersion"] = str(int(
                self.ps["metadata"]["resourceVersion"]) + 1)
            raise KubeError(409, "Conflict", "the object has been modified")
        return self.ps

    def request(self, method, path, **kw):
        self.requests.append((method, path))
        raise KubeError(404, "NotFound", "no SelfSubjectReview here")


def paused_target(**kw):
    ps = service(canary_status(1, 25, 20, phase="Paused", paused=True))
    return plugin.Target(FakeKube(ps, **kw), "payments", "dev-user")


def test_send_writes_the_command_with_the_read_resource_version():
    target = paused_target()
    out = io.StringIO()
    assert plugin.send(target, NAME, "promote", force=False, out=out, user="alice",
                       now=lambda: NOW) == 0
    assert target.kube.patches == [{
        "metadata": {"resourceVersion": "4711"},
        "status": {"command": {"action": "promote", "requestedAt": "2026-12-01T12:00:00Z",
                               "requestedBy": "alice"}}}]
    assert out.getvalue().startswith(
        "paymentservice pay (namespace payments): promote requested at 2026-12-01T12:00:00Z "
        "by alice\n  the operator will skip step 2/4 (pause (until promoted))")


def test_send_reads_again_after_a_conflict():
    target = paused_target(conflicts=1)
    assert plugin.send(target, NAME, "abort", force=False, out=io.StringIO(), user="a",
                       now=lambda: NOW) == 0
    assert [p["metadata"]["resourceVersion"] for p in target.kube.patches] == ["4711", "4712"]


def test_send_refuses_without_writing():
    target = plugin.Target(FakeKube(service(healthy_status())), "payments")
    with pytest.raises(plugin.PluginError, match=r"refusing to retry paymentservice pay: the "
                                                 r"rollout is not aborted .*--force"):
        plugin.send(target, NAME, "retry", force=False, out=io.StringIO(), user="a")
    assert target.kube.patches == []
    out = io.StringIO()
    plugin.send(target, NAME, "retry", force=True, out=out, user="a")
    assert len(target.kube.patches) == 1 and "forced, although" in out.getvalue()


def test_missing_service_is_not_found():
    target = plugin.Target(FakeKube(service(healthy_status())), "payments")
    with pytest.raises(plugin.PluginError, match=r'NotFound.*"other" not found in namespace '
                                                 r'"payments"'):
        plugin.send(target, "other", "abort", force=False, out=io.StringIO(), user="a")


def test_whoami_falls_back_to_the_kubeconfig_user_then_user(monkeypatch):
    target = paused_target()
    assert plugin.whoami(target) == "dev-user"
    assert ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews") in target.kube.requests
    monkeypatch.setenv("USER", "carol")
    assert plugin.whoami(plugin.Target(target.kube, "payments")) == "carol"

    class Reviewing(FakeKube):
        def request(self, method, path, **kw):
            return {"status": {"userInfo": {"username": "kubernetes-admin"}}}
    assert plugin.whoami(plugin.Target(Reviewing(None), "x", "dev-user")) == "kubernetes-admin"


def test_fetch_lists_only_the_services_own_deployments():
    ours = deployment("aaaaaaaaaa", 4)
    foreign = deployment("bbbbbbbbbb", 1)
    foreign["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    kube = FakeKube(service(healthy_status()), lists={"Deployment": [ours, foreign]})
    _, deployments, pods, job = plugin.fetch(plugin.Target(kube, "payments"), NAME)
    assert deployments == [ours] and pods == [] and job is None
    selector = "app.kubernetes.io/instance=pay,paydeck.dev/revision"
    assert ("Deployment", selector) in kube.requests and ("Pod", selector) in kube.requests


class Stop:
    """A sleep that raises KeyboardInterrupt (Ctrl-C) on its n-th call."""

    def __init__(self, after):
        self.after, self.calls = after, []

    def __call__(self, seconds):
        self.calls.append(seconds)
        if len(self.calls) >= self.after:
            raise KeyboardInterrupt


def test_watch_redraws_until_ctrl_c_and_exits_0():
    frames = iter(["frame 1\n", KubeError(0, "Unreachable", "connection refused"), "frame 3\n"])

    def frame():
        value = next(frames)
        if isinstance(value, Exception):
            raise value
        return value
    out, sleep = io.StringIO(), Stop(after=3)
    assert plugin.watch(frame, out, sleep=sleep) == 0
    assert sleep.calls == [2.0, 2.0, 2.0]
    text = out.getvalue()
    assert text.index("frame 1") < text.index("cannot reach the API server") < text.index(
        "frame 3")
    assert plugin.CLEAR_SCREEN not in text  # not a terminal


def test_watch_clears_the_screen_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    out = Tty()
    plugin.watch(lambda: "frame\n", out, sleep=Stop(after=1))
    assert out.getvalue().startswith(plugin.CLEAR_SCREEN + "frame\n")


def test_main_reports_errors_with_exit_code_1(tmp_path, capsys):
    assert plugin.main(["--kubeconfig", str(tmp_path / "missing"), "get", NAME]) == 1
    assert "cannot load the kubeconfig" in capsys.readouterr().err


def test_now_is_utc():
    assert plugin._now().utcoffset().total_seconds() == 0
    assert isinstance(plugin._now(), datetime)
