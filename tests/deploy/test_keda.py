"""The KEDA objects: valid for KEDA v2.20.2, and scaling on what shoal really queues."""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
import pytest
import redis
from redis.connection import parse_url

from shoal import keys
from shoal.settings import Settings
from tests.deploy import keda_schema
from tests.deploy.manifests import Obj, Rendered, container_env, settings_from
from tests.support import Env, gateway, running, start_worker_spec, wait_for_job, wait_for_worker
from worker.celery_app import create_celery

KEDA_KINDS = ("ScaledObject", "ScaledJob", "TriggerAuthentication")
# The dev overlay with keda/local, the short windows of `shoal up --autoscale`.
SHORT_WINDOWS = "variants/dev-short-windows"


def _keda_objects(rendered: dict[str, Rendered]) -> list[tuple[str, Obj]]:
    return [(r.name, o) for r in rendered.values() for k in KEDA_KINDS for o in r.of_kind(k)]


def test_every_keda_object_validates_against_keda_2_20_2(rendered: dict[str, Rendered]) -> None:
    objects = _keda_objects(rendered)
    assert {o["kind"] for _, o in objects} == set(KEDA_KINDS)
    for name, obj in objects:
        assert not keda_schema.errors(obj), (name, obj["metadata"]["name"], keda_schema.errors(obj))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "pollinginterval"), 10),  # a misspelt key
        (("spec", "triggers", 0, "authRef"), {"name": "x"}),  # a key KEDA does not know
        (("spec", "advanced", "scalingModifiers", "formula"), 3),  # the wrong type
        (("spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleUp", "speed"), 1),
    ],
)
def test_the_keda_schema_rejects_mistakes(
    rendered: dict[str, Rendered], path: tuple[Any, ...], value: Any
) -> None:
    broken = copy.deepcopy(rendered["overlays/gpu"].get("ScaledObject", "worker-tts"))
    node: Any = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert keda_schema.errors(broken)


def _container(r: Rendered, kind: str, name: str) -> tuple[Obj, Obj]:
    owner = r.get(kind, name)
    for candidate, pod in r.pod_templates():
        if candidate is owner:
            return pod["spec"], pod["spec"]["containers"][0]
    raise AssertionError(f"{r.name}: no pod template for {kind}/{name}")


def _queues(container: Obj) -> list[str]:
    command: list[str] = container["command"]
    return command[command.index("--queues") + 1].split(",")


def _redis_url(container: Obj) -> str:
    env = {e["name"]: e for e in container["env"]}
    url: str = env["SHOAL_REDIS_URL"]["value"]
    return re.sub(r"\$\((\w+)\)", "secret", url)


def _scalers(r: Rendered) -> list[tuple[Obj, str, str]]:
    """(KEDA object, kind, name) of the workload each scales."""
    found = [
        (so, "Deployment", so["spec"]["scaleTargetRef"]["name"]) for so in r.of_kind("ScaledObject")
    ]
    found += [(sj, "ScaledJob", sj["metadata"]["name"]) for sj in r.of_kind("ScaledJob")]
    return found


def test_triggers_read_the_keys_the_workers_queue_and_run_from(overlays: list[Rendered]) -> None:
    for r in overlays:
        scalers = _scalers(r)
        assert len(scalers) == 2, r.name  # the synthesis pool and the webhook pool
        for scaler, kind, name in scalers:
            _, container = _container(r, kind, name)
            (queue,) = _queues(container)
            assert queue in keys.QUEUES
            lists = {t["metadata"]["listName"] for t in scaler["spec"]["triggers"]}
            if scaler["kind"] == "ScaledJob":
                # Running work is KEDA's own running Jobs; counting it again would double it.
                assert lists == {queue}, r.name
            else:
                assert lists == {queue, keys.inflight(queue)}, r.name


def test_triggers_read_the_redis_database_celery_uses(overlays: list[Rendered]) -> None:
    for r in overlays:
        for scaler, kind, name in _scalers(r):
            _, container = _container(r, kind, name)
            url = _redis_url(container)
            shoal = parse_url(url)  # type: ignore[no-untyped-call]
            celery = create_celery(Settings(redis_url=url))
            assert celery.conf.broker_url == url  # Celery's broker is shoal's Redis, same db
            queues = {q.name: q.routing_key for q in celery.conf.task_queues}
            assert all(queues[q] == q for q in _queues(container))
            namespace = scaler["metadata"]["namespace"]
            service = r.get("Service", shoal["host"])  # the URL's host is a Service here
            for trigger in scaler["spec"]["triggers"]:
                meta = trigger["metadata"]
                # KEDA runs in its own namespace: the Service's full name.
                fqdn = f"{service['metadata']['name']}.{namespace}.svc.cluster.local"
                assert meta["address"] == f"{fqdn}:{shoal.get('port', 6379)}", r.name
                assert int(meta["databaseIndex"]) == shoal.get("db", 0), r.name


def test_keda_reads_the_password_shoal_uses(overlays: list[Rendered]) -> None:
    for r in overlays:
        for scaler, kind, name in _scalers(r):
            _, container = _container(r, kind, name)
            env = {e["name"]: e for e in container["env"]}
            helper = re.search(r"\$\((\w+)\)", env["SHOAL_REDIS_URL"]["value"])
            assert helper, "the URL takes the password from the Secret"
            secret = env[helper.group(1)]["valueFrom"]["secretKeyRef"]
            for trigger in scaler["spec"]["triggers"]:
                auth = r.get("TriggerAuthentication", trigger["authenticationRef"]["name"])
                (ref,) = [
                    s for s in auth["spec"]["secretTargetRef"] if s["parameter"] == "password"
                ]
                assert (ref["name"], ref["key"]) == (secret["name"], secret["key"])
            redis_env = {
                e["name"]: e
                for e in r.get("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0][
                    "env"
                ]
            }
            assert redis_env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == secret


def _formula_terms(scaled_object: Obj) -> list[str]:
    formula: str = scaled_object["spec"]["advanced"]["scalingModifiers"]["formula"]
    terms = [t.strip() for t in formula.split("+")]
    assert all(re.fullmatch(r"\w+", t) for t in terms), f"not a plain sum: {formula}"
    return terms


def test_the_synthesis_pool_counts_waiting_and_running_jobs(overlays: list[Rendered]) -> None:
    for r in overlays:
        if not r.has("ScaledObject", "worker-tts"):
            continue  # the ScaledJob variant
        so = r.get("ScaledObject", "worker-tts")
        spec = so["spec"]
        names = {t["name"]: t["metadata"]["listName"] for t in spec["triggers"]}
        assert sorted(_formula_terms(so)) == sorted(names)  # waiting + running, nothing else
        assert set(names.values()) == {keys.TTS_QUEUE, keys.inflight(keys.TTS_QUEUE)}
        modifiers = spec["advanced"]["scalingModifiers"]
        # Jobs per worker: its batch (test_consistency checks it against the setting).
        assert float(modifiers["target"]) >= 1
        assert float(modifiers["activationTarget"]) == 0
        assert modifiers["metricType"] == "AverageValue"
        assert spec["pollingInterval"] < spec["cooldownPeriod"]
        assert spec["minReplicaCount"] < spec["maxReplicaCount"]
        # A failed metric read never scales busy workers in.
        assert spec["fallback"]["behavior"] == "currentReplicasIfHigher"
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0  # fast up
        down = behavior["scaleDown"]
        if r.name == SHORT_WINDOWS:  # keda/local: a spike drains in minutes, on purpose
            assert down["stabilizationWindowSeconds"] < 300
        else:
            assert down["stabilizationWindowSeconds"] >= 300  # slow down ...
        assert [(p["type"], p["value"]) for p in down["policies"]] == [
            ("Pods", 1)
        ]  # ... one at a time


def test_the_default_keeps_a_warm_worker_and_the_variant_scales_to_zero(
    rendered: dict[str, Rendered],
) -> None:
    warm = rendered["overlays/gpu"].get("ScaledObject", "worker-tts")["spec"]
    assert warm["minReplicaCount"] >= 1
    cold = rendered["variants/gpu-scale-to-zero"].get("ScaledObject", "worker-tts")["spec"]
    assert cold["minReplicaCount"] == 0
    assert cold["cooldownPeriod"] >= 300  # a lull does not release the last GPU at once
    assert {**cold, "minReplicaCount": warm["minReplicaCount"]} == warm


def test_the_webhook_pool_scales_on_its_own_queue(
    overlays: list[Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    for r in overlays:
        so = r.get("ScaledObject", "worker-webhook")
        names = {t["name"]: t["metadata"]["listName"] for t in so["spec"]["triggers"]}
        assert sorted(_formula_terms(so)) == sorted(names)
        assert set(names.values()) == {keys.WEBHOOK_QUEUE, keys.inflight(keys.WEBHOOK_QUEUE)}
        assert so["spec"]["minReplicaCount"] >= 1
        # Deliveries per worker = the Celery threads one webhook worker runs.
        _, container = _container(r, "Deployment", so["spec"]["scaleTargetRef"]["name"])
        settings = settings_from(container_env(r, container), monkeypatch)
        target = so["spec"]["advanced"]["scalingModifiers"]["target"]
        assert float(target) == settings.webhook_concurrency


def test_the_scaled_job_runs_the_deployments_pod_one_job_each(
    rendered: dict[str, Rendered],
) -> None:
    gpu = rendered["overlays/gpu"]
    variant = rendered["variants/gpu-scaledjob"]
    assert not variant.has("Deployment", "worker-tts")
    assert not variant.has("ScaledObject", "worker-tts")
    scaled_job = variant.get("ScaledJob", "worker-tts")
    assert scaled_job["spec"]["scalingStrategy"]["strategy"] == "accurate"
    assert scaled_job["spec"]["rollout"]["strategy"] == "gradual"  # running Jobs are kept
    job_pod = copy.deepcopy(scaled_job["spec"]["jobTargetRef"]["template"]["spec"])
    deployment_pod = copy.deepcopy(gpu.get("Deployment", "worker-tts")["spec"]["template"]["spec"])
    assert job_pod.pop("restartPolicy") == "Never"
    job_command = job_pod["containers"][0].pop("command")
    deployment_command = deployment_pod["containers"][0].pop("command")
    assert job_command[: len(deployment_command)] == deployment_command
    assert "--max-jobs" in job_command and "--idle-exit" in job_command
    assert job_pod == deployment_pod  # same image, GPU, tier, volumes, settings, probes


# KEDA's Redis scaler counts a key by its type; this is the same rule.
_KEDA_COUNT = """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'hash' then return redis.call('HLEN', KEYS[1]) end
if kind == 'list' or kind == 'none' then return redis.call('LLEN', KEYS[1]) end
return redis.error_reply('unexpected type ' .. kind)
"""


def _formula_value(client: redis.Redis, scaled_object: Obj) -> dict[str, int]:
    return {
        t["name"]: int(client.eval(_KEDA_COUNT, 1, t["metadata"]["listName"]))
        for t in scaled_object["spec"]["triggers"]
    }


def test_on_a_real_redis_a_job_counts_while_it_waits_and_while_it_runs(
    rendered: dict[str, Rendered], env: Env
) -> None:
    scaled_object = rendered["overlays/gpu"].get("ScaledObject", "worker-tts")
    client = redis.Redis.from_url(env.values["SHOAL_REDIS_URL"], decode_responses=True)
    slow = env.with_(SHOAL_EMULATE_RTF="3")  # a few seconds of "GPU" time
    with gateway(slow) as url, httpx.Client(base_url=url) as http:
        job = http.post("/v1/jobs", json={"text": "Counted twice."})
        job_id = job.json()["id"]
        assert _formula_value(client, scaled_object) == {"waiting": 1, "running": 0}
        with running(start_worker_spec(slow, "tts-counted@tests")):
            wait_for_worker(client, "tts-counted@tests")
            wait_for_job(http, job_id, {"running"})
            # The busy worker is still wanted: a queue-only trigger would read 0 here.
            assert _formula_value(client, scaled_object) == {"waiting": 0, "running": 1}
            assert wait_for_job(http, job_id)["status"] == "succeeded"
            assert _formula_value(client, scaled_object) == {"waiting": 0, "running": 0}
    client.close()
