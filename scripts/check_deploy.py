#!/usr/bin/env python3
"""The checks of `make deploy-check` that need Python (run by scripts/check-deploy inside .venv-deploy/).

  drift    deploy/ copies of rules/ (ConfigMaps, chart files) equal what scripts/gen-deploy writes now
  crds     the binding CRDs share one schema; sample and default bindings pass it, the bad samples do not;
           the sample ApplicationProfile passes its CRD
  values   deploy/helm/patrol/values.yaml passes values.schema.json, and a few known-bad values do not
  checkov  FILE.json: checkov's JSON report against deploy/checkov-exceptions.yaml and docs/deploy.md
"""
import copy
import json
import os
import subprocess
import sys
import tempfile

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = []


def fail(message):
    failures.append(message)
    print(f"check-deploy: FAIL {message}", file=sys.stderr)


def ok(message):
    print(f"check-deploy: ok   {message}")


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def path(*parts):
    return os.path.join(ROOT, *parts)


def check_drift():
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([path("scripts", "gen-deploy"), scratch], check=True)
        fresh_dir = os.path.join(scratch, "deploy", "manifests")
        for name in sorted(os.listdir(fresh_dir)):
            fresh = load_all(os.path.join(fresh_dir, name))
            committed_path = path("deploy", "manifests", name)
            committed = load_all(committed_path) if os.path.exists(committed_path) else None
            if fresh != committed:
                fail(f"deploy/manifests/{name} differs from rules/; run 'make deploy-gen' and commit")
            else:
                ok(f"deploy/manifests/{name} carries rules/ as it is")
        chart_dirs = ["files/" + sub for sub in sorted(os.listdir(os.path.join(scratch, "deploy", "helm", "patrol",
                                                                                   "files")))] + ["crds"]
        fresh_files = os.path.join(scratch, "deploy", "helm", "patrol")
        committed_files = path("deploy", "helm", "patrol")
        for sub in chart_dirs:
            names = set(os.listdir(os.path.join(fresh_files, sub)))
            have = set(os.listdir(os.path.join(committed_files, sub))) if os.path.isdir(
                os.path.join(committed_files, sub)) else set()
            same = names == have and all(
                open(os.path.join(fresh_files, sub, n), "rb").read()
                == open(os.path.join(committed_files, sub, n), "rb").read() for n in names)
            if same:
                ok(f"deploy/helm/patrol/{sub}/ equals its source")
            else:
                fail(f"deploy/helm/patrol/{sub}/ differs from its source; run 'make deploy-gen' and commit")


def crd_schema(filename):
    (crd,) = load_all(path("deploy", "manifests", filename))
    (version,) = crd["spec"]["versions"]
    return crd, version["schema"]["openAPIV3Schema"]


def validate(schema, document):
    """The CRD's openAPIV3Schema checked as JSON Schema (draft 4 keywords: what the API server's validator reads;
    x-kubernetes-* extensions are unknown keywords and ignored)."""
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    return [f"{'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in errors]


def structural_problems(schema, where="", in_junctor=False):
    """The API server's structural-schema rules that a JSON Schema validator does not know: every node outside
    oneOf/anyOf/allOf/not states its type (unless it preserves unknown fields or is int-or-string), and nodes inside
    those junctors only constrain values: no type, description, default, nullable or additionalProperties."""
    problems = []
    junctors = ("oneOf", "anyOf", "allOf", "not")
    if in_junctor:
        for key in ("type", "description", "default", "nullable", "additionalProperties"):
            if key in schema:
                problems.append(f"{where or '(root)'}: '{key}' inside {'/'.join(junctors)}")
    elif "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields") \
            and not schema.get("x-kubernetes-int-or-string"):
        problems.append(f"{where or '(root)'}: no type")
    for name, sub in schema.get("properties", {}).items():
        problems += structural_problems(sub, f"{where}.{name}", in_junctor)
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{where}[]", in_junctor)
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{where}.*", in_junctor)
    for junctor in junctors:
        branches = schema.get(junctor)
        for n, sub in enumerate(branches if isinstance(branches, list) else [branches] if branches else []):
            problems += structural_problems(sub, f"{where}.{junctor}[{n}]", True)
    return problems


def check_crds():
    cluster, cluster_schema = crd_schema("10-crd-runtimerulealertbindings.yaml")
    namespaced, namespaced_schema = crd_schema("11-crd-namespacedruntimerulealertbindings.yaml")
    _, profile_schema = crd_schema("12-crd-applicationprofiles.yaml")
    if cluster_schema != namespaced_schema:
        fail("the cluster-scoped and namespaced binding CRDs have different schemas")
    else:
        ok("both binding CRDs have the same schema")
    for filename, schema in (("10-crd-runtimerulealertbindings.yaml", cluster_schema),
                             ("11-crd-namespacedruntimerulealertbindings.yaml", namespaced_schema),
                             ("12-crd-applicationprofiles.yaml", profile_schema)):
        jsonschema.Draft4Validator.check_schema(schema)
        problems = structural_problems(schema)
        if problems:
            fail(f"deploy/manifests/{filename}: the schema is not structural: {'; '.join(problems)}")
        else:
            ok(f"deploy/manifests/{filename}: the schema is structural")
    schemas = {cluster["spec"]["names"]["kind"]: cluster_schema,
               namespaced["spec"]["names"]["kind"]: namespaced_schema,
               "ApplicationProfile": profile_schema}

    def schema_for(doc, where):
        kind = doc.get("kind")
        if doc.get("apiVersion") != "kubescape.io/v1" or kind not in schemas:
            fail(f"{where}: {doc.get('apiVersion')}/{kind} is not a kind of Patrol's CRDs")
            return None
        return schemas[kind]

    good = [("rules/bindings/default.yaml", d) for d in load_all(path("rules", "bindings", "default.yaml"))]
    good += [("deploy/samples/bindings-valid.yaml", d) for d in load_all(path("deploy", "samples",
                                                                             "bindings-valid.yaml"))]
    good += [("deploy/samples/applicationprofile.yaml", d) for d in load_all(path("deploy", "samples",
                                                                                 "applicationprofile.yaml"))]
    for where, doc in good:
        schema = schema_for(doc, where)
        if schema is None:
            continue
        problems = validate(schema, doc)
        name = f"{where} ({doc['kind']} {doc['metadata']['name']})"
        if problems:
            fail(f"{name} is refused by its CRD schema: {'; '.join(problems)}")
        else:
            ok(f"{name} passes its CRD schema")
    for doc in load_all(path("deploy", "samples", "bindings-invalid.yaml")):
        where = "deploy/samples/bindings-invalid.yaml"
        schema = schema_for(doc, where)
        if schema is None:
            continue
        problems = validate(schema, doc)
        if problems:
            ok(f"{where} ({doc['metadata']['name']}) is refused: {problems[0]}")
        else:
            fail(f"{where} ({doc['metadata']['name']}) passes the CRD schema but must not")


def check_values():
    chart = path("deploy", "helm", "patrol")
    with open(os.path.join(chart, "values.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    with open(os.path.join(chart, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    validator = jsonschema.Draft7Validator(schema)
    problems = [f"{'.'.join(str(p) for p in e.path)}: {e.message}" for e in validator.iter_errors(values)]
    if problems:
        fail(f"deploy/helm/patrol/values.yaml does not pass values.schema.json: {'; '.join(problems)}")
    else:
        ok("deploy/helm/patrol/values.yaml passes values.schema.json")
    # The schema must also refuse what it is there to refuse (helm install --set with a typo or a bad value).
    bad_edits = [
        ("an unknown top-level key", lambda v: v.__setitem__("sensorr", {})),
        ("a syslog protocol other than udp/tcp/tls", lambda v: v["collector"]["sinks"]["syslog"].__setitem__(
            "protocol", "http")),
        ("a learning period without a unit", lambda v: v["collector"]["profiles"].__setitem__(
            "learningPeriod", "fifteen")),
        ("a negative ClamAV schedule", lambda v: v["sensor"]["clamav"].__setitem__("scheduleSeconds", -1)),
        ("an image without a repository", lambda v: v["sensor"]["image"].__setitem__("repository", "")),
    ]
    for what, edit in bad_edits:
        edited = copy.deepcopy(values)
        edit(edited)
        if validator.is_valid(edited):
            fail(f"values.schema.json accepts {what}")
        else:
            ok(f"values.schema.json refuses {what}")


def check_template_references():
    """Helm cannot run here, so the templates are never rendered; this at least catches a template naming a value
    that values.yaml does not have (a typo renders as empty, silently). It follows `.Values.a.b` and the
    `$s := .Values.sensor` / `$c := .Values.collector` aliases, and `with X` blocks one level deep."""
    import re
    chart = path("deploy", "helm", "patrol")
    with open(os.path.join(chart, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)

    def exists(keys):
        node = values
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        return True

    templates = os.path.join(chart, "templates")
    checked = 0
    for name in sorted(os.listdir(templates)):
        with open(os.path.join(templates, name), encoding="utf-8") as f:
            text = f.read()
        aliases = {m.group(1): m.group(2).split(".") for m in re.finditer(r"\$(\w+) := \.Values\.([\w.]+)", text)}
        scope = []  # the value path of each open `with`, None for other blocks
        for line in text.splitlines():
            for action in re.findall(r"{{-?\s*(.*?)\s*-?}}", line):
                refs = [m.group(1).split(".") for m in re.finditer(r"\.Values\.([\w.]+)", action)]
                for alias, base in aliases.items():
                    refs += [base + m.group(1).split(".") for m in re.finditer(r"\$" + alias + r"\.([\w.]+)", action)]
                inner = scope[-1] if scope and scope[-1] is not None else None
                if inner is not None:
                    refs += [inner + m.group(1).split(".") for m in re.finditer(r"(?<![\w$)])\.(\w[\w.]*)", action)
                             if not m.group(1).startswith(("Values", "Release", "Chart", "Files", "Template"))]
                for ref in refs:
                    checked += 1
                    if not exists([k for k in ref if k]):
                        fail(f"deploy/helm/patrol/templates/{name}: {'.'.join(ref)} is not in values.yaml")
                if re.match(r"with\b", action):
                    target = refs[0] if refs and len(refs) == 1 else None
                    scope.append(target)
                elif re.match(r"if\b", action):
                    scope.append(inner)  # `if` keeps the dot; `range` and `define` change it
                elif re.match(r"(range|define)\b", action):
                    scope.append(None)
                elif action == "end":
                    if scope:
                        scope.pop()
    ok(f"the chart's templates name only values that values.yaml has ({checked} references)")


def check_checkov(report_path):
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    reports = report if isinstance(report, list) else [report]
    failed = []
    passed = 0
    checked = set()
    for r in reports:
        results = r.get("results", {})
        passed += len(results.get("passed_checks", []))
        failed += [(c["check_id"], c["resource"]) for c in results.get("failed_checks", [])]
        checked |= {c["resource"] for c in results.get("passed_checks", []) + results.get("failed_checks", [])}
    # A workload checkov did not parse would pass by having no findings: both must have been checked.
    for resource in ("StatefulSet.patrol.patrol-collector", "DaemonSet.patrol.patrol-sensor"):
        if resource not in checked:
            fail(f"checkov did not check {resource}")
    exceptions = yaml.safe_load(open(path("deploy", "checkov-exceptions.yaml"), encoding="utf-8"))
    allowed = {(e["check"], e["resource"]) for e in exceptions}
    with open(path("docs", "deploy.md"), encoding="utf-8") as f:
        docs = f.read()
    for check, resource in sorted(set(failed)):
        if (check, resource) in allowed:
            ok(f"checkov {check} fails for {resource}: accepted (deploy/checkov-exceptions.yaml)")
        else:
            fail(f"checkov {check} fails for {resource} and is not an accepted exception")
    for check, resource in sorted(allowed - set(failed)):
        fail(f"checkov {check} no longer fails for {resource}: remove it from deploy/checkov-exceptions.yaml "
             "and docs/deploy.md")
    for e in exceptions:
        if not e["resource"].startswith("DaemonSet.patrol.patrol-sensor"):
            fail(f"deploy/checkov-exceptions.yaml: {e['check']} is for {e['resource']}; only the sensor may fail")
        if e["check"] not in docs:
            fail(f"docs/deploy.md does not explain the checkov exception {e['check']}")
    ok(f"checkov: {passed} checks passed, {len(failed)} failed, all of them accepted sensor exceptions"
       if not failures else f"checkov: {passed} passed, {len(failed)} failed")


def main():
    what = sys.argv[1]
    if what == "drift":
        check_drift()
    elif what == "crds":
        check_crds()
    elif what == "values":
        check_values()
        check_template_references()
    elif what == "checkov":
        check_checkov(sys.argv[2])
    else:
        sys.exit(f"unknown check {what}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
