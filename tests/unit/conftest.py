"""Template graphs of the session's two assemblies (configured pooler, flipped pooler), built once and shared."""

from __future__ import annotations

import pytest

from tests.conftest import Synthesized
from tests.unit.template_graph import TemplateGraph


@pytest.fixture(scope="session")
def graph(synthesized: Synthesized) -> TemplateGraph:
    return TemplateGraph.from_assembly(synthesized.assembly)


@pytest.fixture(scope="session")
def graph_flipped(synthesized_flipped: Synthesized) -> TemplateGraph:
    """The other pooler per environment (PgBouncer's ECS task secrets where RDS Proxy is configured, and back)."""
    return TemplateGraph.from_assembly(synthesized_flipped.assembly)


@pytest.fixture(params=["configured", "flipped_pooler"])
def any_graph(request: pytest.FixtureRequest) -> TemplateGraph:
    """Each rule that must hold for RDS Proxy and PgBouncer alike runs on both assemblies."""
    name = "graph" if request.param == "configured" else "graph_flipped"
    graph: TemplateGraph = request.getfixturevalue(name)
    return graph
