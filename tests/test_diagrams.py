"""Every diagram in bpmn/ opens cleanly in bpmn-js (the viewer staff and designers use) and
is laid out so people can read it: each element drawn, nothing on top of anything else,
every task inside its lane. Rendered in Debian's Chromium through Playwright; a PNG of
each diagram is left in the test's temp folder for a person to look at.
"""
from __future__ import annotations

import json
import os
from collections import Counter
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


# --- Camunda Modeler -----------------------------------------------------------------------------
# Camunda Modeler is bpmn-js's Modeler with the camunda-bpmn-moddle extension (its descriptor is
# copied into app/static/vendor by `make install`). A diagram must open there without a warning,
# and saving it must keep everything a designer set: every element, the spiffworkflow: extensions
# Hotline runs on (scripts, properties, service parameters) and any camunda: attributes. Something
# lost on the round trip is a setting Camunda Modeler would silently drop.

CAMUNDA_MODDLE = ROOT / "app" / "static" / "vendor" / "camunda-bpmn-moddle" / "camunda.json"
CORPUS = Path(os.environ.get("HOTLINE_CORPUS", ROOT.parent / "shared" / "corpus"))
CORPUS_CAMUNDA = sorted(p for p in CORPUS.rglob("*.bpmn") if "camunda:" in p.read_text(encoding="utf-8")) \
    if CORPUS.is_dir() else []

MODELER_JS = """
async ({xml, camunda}) => {
  const modeler = new BpmnJS({container: '#canvas', moddleExtensions: camunda ? {camunda} : {}});
  try {
    const result = await modeler.importXML(xml);
    const saved = await modeler.saveXML({format: true});
    const extended = Boolean(modeler.get('moddle').getPackage('camunda'));
    return {error: null, warnings: result.warnings.map(w => w.message), xml: saved.xml, extended};
  } catch (err) {
    return {error: err.message, warnings: (err.warnings || []).map(w => w.message), xml: null};
  } finally {
    modeler.destroy();
  }
}
"""


@pytest.fixture(scope="module")
def modeler(page):
    """Open a diagram as Camunda Modeler does: ``modeler(xml)`` -> {error, warnings, xml (saved)};
    ``modeler(xml, camunda_moddle=False)``: the same without the Camunda extension. A page of its
    own in the viewer's browser (the modeler bundle defines BpmnJS too)."""
    if not (VENDOR / "bpmn-modeler.production.min.js").exists() or not CAMUNDA_MODDLE.exists():
        pytest.fail("bpmn-js or camunda-bpmn-moddle is missing from app/static/vendor: run `make install`")
    camunda = json.loads(CAMUNDA_MODDLE.read_text(encoding="utf-8"))
    tab = page.context.browser.new_page(viewport={"width": 1800, "height": 1000})
    tab.set_content('<html><body style="margin:0"><div id="canvas" style="width:1800px;height:1000px">'
                    '</div></body></html>')
    tab.add_script_tag(path=str(VENDOR / "bpmn-modeler.production.min.js"))
    yield lambda xml, camunda_moddle=True: tab.evaluate(
        MODELER_JS, {"xml": xml, "camunda": camunda if camunda_moddle else None})
    tab.close()


def _contents(xml: str | bytes) -> Counter:
    """Every element of a BPMN file as what it says: (prefix:tag, the id it belongs to, its attributes,
    its text). Numbers compare as numbers (a bound of 100 is 100.0), so only a real change counts."""
    root = etree.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml)
    found: Counter = Counter()
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        owner = el.get("id") or el.get("bpmnElement") or \
            next((a.get("id") or a.get("bpmnElement") for a in el.iterancestors()
                  if a.get("id") or a.get("bpmnElement")), "")
        attributes = tuple(sorted((_prefixed(el, k), _number(v)) for k, v in el.attrib.items()))
        text = el.text if el.text and el.text.strip() else ""  # indentation between elements is no text
        found[(_prefixed(el, el.tag), owner, attributes, text)] += 1
    return found


def _prefixed(el, name: str) -> str:
    q = etree.QName(name)
    prefix = next((p for p, uri in el.nsmap.items() if uri == q.namespace and p), None) if q.namespace else None
    return f"{prefix}:{q.localname}" if prefix else q.localname


def _number(value: str) -> str | float:
    try:
        return float(value)
    except ValueError:
        return value


def _lost(original: str, saved: str) -> list[str]:
    """What ``saved`` no longer has of ``original``, one line per element or changed element."""
    return [f"<{tag}> of {owner or 'the file'} {dict(attributes)}" + (f" text {text[:60]!r}" if text else "")
            for (tag, owner, attributes, text) in (_contents(original) - _contents(saved))]


def test_the_round_trip_check_notices_a_dropped_setting():
    original = (ROOT / "bpmn" / "escalation.bpmn").read_text(encoding="utf-8")
    tree = etree.fromstring(original.encode("utf-8"))
    prop = tree.find(".//{http://spiffworkflow.org/bpmn/schema/1.0/core}property")
    prop.getparent().remove(prop)
    task = tree.find(".//bpmn:serviceTask", NS)
    task.set("name", task.get("name") + " (renamed)")
    lost = _lost(original, etree.tostring(tree, encoding="unicode"))
    assert len(lost) == 2, lost
    assert any(line.startswith("<spiffworkflow:property> of ") and prop.get("value") in line for line in lost), lost
    assert any(line.startswith(f"<bpmn:serviceTask> of {task.get('id')} ") for line in lost), lost


@pytest.mark.parametrize("path", DIAGRAMS, ids=[p.name for p in DIAGRAMS])
def test_the_diagram_opens_and_saves_in_camunda_modeler_without_loss(modeler, path):
    original = path.read_text(encoding="utf-8")
    report = modeler(original)
    assert report["error"] is None, f"{path.name}: Camunda Modeler cannot open it: {report['error']}"
    assert report["extended"], "the camunda moddle extension did not load"
    assert report["warnings"] == [], f"{path.name}: Camunda Modeler warnings"
    assert _lost(original, report["xml"]) == [], f"{path.name}: Camunda Modeler drops these on saving"


# What bpmn-js itself (with or without the Camunda extension) loses of two corpus files, by tag:
# - <bpmn:messagePath> of a correlation property comes back as <bpmn:formalExpression> (bpmn-moddle
#   writes the element under its type's name), so SpiffWorkflow no longer finds the retrieval
#   expression: a diagram with correlation properties must not be saved from bpmn-js or Camunda Modeler;
# - references to ids the file does not define (the files' own import warnings) are dropped or corrected.
CORPUS_KNOWN_LOSSES = {
    "spiff-example-cli/tutorial/events.bpmn": {"bpmn:messagePath", "bpmndi:BPMNPlane"},
    "spiff-example-cli/tutorial/top_level_multi.bpmn": {"bpmn:messagePath", "bpmn:loopDataInputRef",
                                                        "bpmn:loopDataOutputRef"},
}


@pytest.mark.parametrize("path", CORPUS_CAMUNDA, ids=[str(p.relative_to(CORPUS)) for p in CORPUS_CAMUNDA])
def test_corpus_files_with_camunda_settings_keep_them_in_camunda_modeler(modeler, path):
    """Other people's files, some with defects of their own (a dangling reference is a warning in
    any bpmn-js): the Camunda extension adds no warning, and nothing else is lost on saving."""
    original = path.read_text(encoding="utf-8")
    report = modeler(original)
    assert report["error"] is None, f"{path}: Camunda Modeler cannot open it: {report['error']}"
    assert report["warnings"] == modeler(original, camunda_moddle=False)["warnings"], \
        f"{path}: warnings only with the Camunda extension"
    lost = _lost(original, report["xml"])
    known = CORPUS_KNOWN_LOSSES.get(path.relative_to(CORPUS).as_posix(), set())
    assert {line[1:].split(">", 1)[0] for line in lost} == known, f"{path}: Camunda Modeler drops these on saving"
    saved = _contents(report["xml"])
    assert any(name.startswith("camunda:") for (tag, _, attributes, _) in saved
               for name in (tag, *(k for k, _ in attributes))), f"{path}: no camunda: setting left to check"
