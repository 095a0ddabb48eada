"""Every diagram in bpmn/ opens cleanly in bpmn-js (the viewer staff and designers use) and
is laid out so people can read it: each element drawn, nothing on top of anything else,
every task inside its lane. Rendered in Debian's Chromium through Playwright; a PNG of
each diagram is left in the test's temp folder for a person to look at.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from support import chromium_path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "app" / "static" / "vendor" / "bpmn-js"
DIAGRAMS = sorted((ROOT / "bpmn").glob("*.bpmn"))
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI"}
DRAWN = ("task", "userTask", "serviceTask", "scriptTask", "businessRuleTask", "sendTask", "receiveTask",
         "manualTask", "callActivity", "subProcess", "startEvent", "endEvent", "intermediateCatchEvent",
         "intermediateThrowEvent", "boundaryEvent", "exclusiveGateway", "parallelGateway", "inclusiveGateway",
         "eventBasedGateway", "sequenceFlow", "lane", "participant")

# What the page reports for one imported diagram: warnings, and the box of every shape.
LAYOUT_JS = """
async (xml) => {
  const viewer = new BpmnJS({container: '#canvas'});
  let warnings = [];
  try {
    const result = await viewer.importXML(xml);
    warnings = result.warnings.map(w => w.message);
  } catch (err) {
    return {error: err.message, warnings: (err.warnings || []).map(w => w.message)};
  }
  viewer.get('canvas').zoom('fit-viewport');
  const shapes = viewer.get('elementRegistry').filter(e => !e.waypoints && e.type !== 'label' && e.parent)
    .map(e => ({id: e.id, type: e.type, x: e.x, y: e.y, w: e.width, h: e.height,
                parent: e.parent && e.parent.id, host: e.host ? e.host.id : null,
                lanes: (e.businessObject.lanes || []).map(l => l.id)}));
  return {error: null, warnings, shapes};
}
"""


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if not (VENDOR / "bpmn-navigated-viewer.production.min.js").exists():
        pytest.fail("bpmn-js is missing from app/static/vendor: run `make install`")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1800, "height": 1000})
        page.set_content('<html><body style="margin:0"><div id="canvas" style="width:1800px;height:1000px">'
                         '</div></body></html>')
        for css in ("diagram-js.css", "bpmn-js.css", "bpmn-font/css/bpmn.css"):
            page.add_style_tag(path=str(VENDOR / "assets" / css))
        page.add_script_tag(path=str(VENDOR / "bpmn-navigated-viewer.production.min.js"))
        yield page
        browser.close()


def _drawn_ids(path: Path) -> tuple[set[str], set[str]]:
    tree = etree.parse(str(path))
    wanted = {el.get("id") for name in DRAWN for el in tree.iterfind(f".//bpmn:{name}", NS)}
    drawn = {el.get("bpmnElement") for el in tree.iterfind(".//bpmndi:BPMNShape", NS)} | \
            {el.get("bpmnElement") for el in tree.iterfind(".//bpmndi:BPMNEdge", NS)}
    return wanted, drawn


def _overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def _inside(inner: dict, outer: dict) -> bool:
    return (inner["x"] >= outer["x"] and inner["y"] >= outer["y"] and inner["x"] + inner["w"] <= outer["x"] + outer["w"]
            and inner["y"] + inner["h"] <= outer["y"] + outer["h"])


@pytest.mark.parametrize("path", DIAGRAMS, ids=[p.name for p in DIAGRAMS])
def test_every_element_has_its_place_in_the_diagram(path):
    wanted, drawn = _drawn_ids(path)
    assert sorted(wanted - drawn) == [], f"{path.name}: elements without a shape or edge in the diagram"


@pytest.mark.parametrize("path", DIAGRAMS, ids=[p.name for p in DIAGRAMS])
def test_the_diagram_opens_in_bpmn_js_and_reads_cleanly(page, path, tmp_path):
    report = page.evaluate(LAYOUT_JS, path.read_text(encoding="utf-8"))
    page.screenshot(path=str(tmp_path / f"{path.stem}.png"))
    assert report["error"] is None, f"{path.name}: bpmn-js cannot open it: {report['error']}"
    assert report["warnings"] == [], f"{path.name}: bpmn-js warnings"
    shapes = [s for s in report["shapes"] if s["type"] not in ("bpmn:Process", "bpmn:Collaboration")]
    by_id = {s["id"]: s for s in shapes}
    nodes = [s for s in shapes if s["type"] not in ("bpmn:Lane", "bpmn:Participant") and not s["host"]]

    def related(a: dict, b: dict) -> bool:  # one drawn inside the other (an expanded sub-process)
        return a["parent"] == b["id"] or b["parent"] == a["id"]

    overlaps = [f"{a['id']} / {b['id']}" for i, a in enumerate(nodes) for b in nodes[i + 1:]
                if _overlap(a, b) and not related(a, b)]
    assert overlaps == [], f"{path.name}: shapes drawn on top of each other"
    outside = [f"{s['id']} (lane {lane})" for s in nodes for lane in s["lanes"]
               if lane in by_id and not _inside(s, by_id[lane])]
    assert outside == [], f"{path.name}: elements drawn outside the lane they belong to"
    unhosted = [s["id"] for s in shapes if s["type"] == "bpmn:BoundaryEvent" and s["host"] not in by_id]
    assert unhosted == [], f"{path.name}: boundary events not attached to a drawn task"
