"""Experience memory (procedural): task trajectories, their outcomes, and lessons from consolidation."""

from __future__ import annotations

import asyncio

import pytest

from memstrata import AsyncMemory, InvalidInput, Memory, Settings
from memstrata.write.experience import infer_success

AGENT = {"agent_id": "coder"}


@pytest.fixture
def agent_memory(tmp_path, embedder) -> Memory:
    m = Memory(settings=Settings(db=tmp_path / "m.db"), embedder=embedder)
    yield m
    m.close()


def seed(m: Memory):
    ok = m.add_experience(
        "Deploy the web service to the staging cluster",
        ["build the docker image", "push it to the registry", {"action": "kubectl apply", "observation": "pods ready"}],
        "deployed, all health checks passed",
        "use the staging namespace",
        **AGENT,
    )
    failed = m.add_experience(
        "Deploy the web service to the production cluster",
        ["build the docker image", "kubectl apply without a namespace"],
        "failed: pods crashed with a missing secret",
        **AGENT,
    )
    other = m.add_experience(
        "Write unit tests for the CSV parser",
        ["read the parser", "write tests for quoted fields"],
        "tests pass",
        success=True,
        **AGENT,
    )
    return ok, failed, other


def test_add_and_search_experience_with_lessons(agent_memory: Memory):
    m = agent_memory
    ok, failed, other = seed(m)
    assert ok.kind == "experience" and ok.layer_value == 1 and ok.id.startswith("ex_")
    trajectory = m.get(ok.sources[0], **AGENT)
    assert trajectory.kind == "trajectory" and "Step 3:" in trajectory.content

    hits = m.search_experience("deploy the service to a cluster", **AGENT)
    assert [h.id for h in hits[:2]] == [ok.id, failed.id] or [h.id for h in hits[:2]] == [failed.id, ok.id]
    by_id = {h.id: h for h in hits}
    assert by_id[ok.id].success is True and by_id[ok.id].label == "succeeded"
    assert by_id[failed.id].success is False and by_id[failed.id].label == "failed", "failures are kept, labelled"
    assert by_id[ok.id].steps[2] == {"action": "kubectl apply", "observation": "pods ready"}
    assert by_id[ok.id].feedback == "use the staging namespace"
    assert all(h.lesson is None for h in hits), "lessons come from consolidation"

    report = m.organise(**AGENT)[0]
    assert report.steps["lessons"]["created"] == 3
    hits = {h.id: h for h in m.search_experience("deploy the service to a cluster", **AGENT)}
    assert hits[failed.id].lesson.startswith("Failed at") and "missing secret" in hits[failed.id].lesson
    assert "without a namespace" in hits[failed.id].lesson, "the last steps say what to avoid"
    assert hits[ok.id].lesson.startswith("Worked for") and "kubectl apply" in hits[ok.id].lesson
    assert "staging namespace" in hits[ok.id].lesson
    assert m.organise(**AGENT)[0].changed == 0, "one lesson per experience, once"

    wins = m.search_experience("deploy the service", **AGENT, include_failed=False)
    assert failed.id not in [h.id for h in wins]
    # experiences are memories like any other: a general search finds them too
    assert ok.id in [h.id for h in m.search("staging cluster deploy", **AGENT, limit=10)]

    # erasing the trajectory erases the experience and its lesson
    m.delete_episode(failed.sources[0], **AGENT)
    left = m.search_experience("deploy the service to the production cluster", **AGENT)
    assert failed.id not in [h.id for h in left]
    assert all("missing secret" not in (r.content) for r in m.list(**AGENT, limit=1000).items)


def test_outcome_wording_and_bad_input(agent_memory: Memory):
    assert infer_success("failed: timeout") is False
    assert infer_success("it didn't work") is False
    assert infer_success("all tests passed") is True
    assert infer_success("the user replied") is None
    # trouble said to be gone or dealt with is no failure; trouble left is one
    assert infer_success("Deployed successfully after fixing the registry auth error") is True
    assert infer_success("Fixed the crash in the parser") is True
    assert infer_success("All tests green, no errors") is True
    assert infer_success("Migration finished without downtime") is True
    assert infer_success("Shipped to production") is True
    assert infer_success("Failed to fix the error") is False
    assert infer_success("Build errors remain after fixing the lint issue") is False
    with pytest.raises(InvalidInput):
        agent_memory.add_experience("task", "not a list", "done", **AGENT)
    with pytest.raises(InvalidInput):
        agent_memory.add_experience("", [], "done", **AGENT)
    assert agent_memory.list(**AGENT).items == []


def test_async_experience(tmp_path, embedder):
    async def run():
        async with AsyncMemory(settings=Settings(db=tmp_path / "a.db"), embedder=embedder) as m:
            rec = await m.add_experience("Book a table for two", ["call the restaurant"], "booked", **AGENT)
            hits = await m.search_experience("reserve a restaurant table", **AGENT)
            return rec, hits

    rec, hits = asyncio.run(run())
    assert hits[0].id == rec.id and hits[0].label == "unknown", "\"booked\" says neither success nor failure"


def test_an_error_named_in_the_steps_finds_its_experience(agent_memory: Memory):
    """Two deployments alike in task and outcome, each with its own failure in the steps: a query that
    describes one failure finds that experience first (its trajectory is searched too)."""
    m = agent_memory
    auth = m.add_experience("Deploy the web app to staging", ["ran docker build", "push failed: registry auth expired",
                            "ran docker login", "push ok"], "deployed after re-login", **AGENT)
    env = m.add_experience("Deploy the API to production", ["ran migrations", "health check failed: missing env var "
                           "DATABASE_URL", "set env var", "redeployed"], "failed at first, fixed env var",
                           success=True, **AGENT)
    assert m.search_experience("docker push fails with an auth error", **AGENT)[0].id == auth.id
    assert m.search_experience("health check failing after deploy", **AGENT)[0].id == env.id
    hits = m.search_experience("registry auth expired", **AGENT)
    assert [h.id for h in hits].count(auth.id) == 1 and all(h.record.kind == "experience" for h in hits)
