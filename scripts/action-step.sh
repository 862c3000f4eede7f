#!/usr/bin/env bash
# The GitHub Action's one grading step (action.yml runs it; tests/test_action.py runs it with a fake grader).
#
# Inputs come from the environment, never interpolated into the script, so a path or rubric name can hold
# any characters:
#   INPUT_PATH (default .), INPUT_MIN_GRADE (default C), INPUT_RUBRIC (default redis-module),
#   INPUT_OUTPUT_DIR (default .): where r.json, junit.xml, summary.md and report.html are written,
#   GRADER_BIN_DIR (optional): the bin folder of the venv the grader is installed in; it comes first on PATH
#   for this step only, so the job's own Python is left as the caller set it up.
# It runs `grader check`, appends the Markdown report to $GITHUB_STEP_SUMMARY, writes grade=, score= and
# the reports' paths (json-path=, junit-path=, markdown-path=, html-path=; empty for a report not written)
# to $GITHUB_OUTPUT, prints one ::error annotation per failed check (at the file and line its evidence
# names, when it names one), and exits with grader's own exit code (0 pass, 1 below --min-grade, 2 usage,
# 3 harness).
set -uo pipefail

path="${INPUT_PATH:-.}"
min_grade="${INPUT_MIN_GRADE:-C}"
rubric="${INPUT_RUBRIC:-redis-module}"
out="${INPUT_OUTPUT_DIR:-.}"
summary_file="${GITHUB_STEP_SUMMARY:-/dev/null}"
output_file="${GITHUB_OUTPUT:-/dev/null}"
if [ -n "${GRADER_BIN_DIR:-}" ]; then
    PATH="$GRADER_BIN_DIR:$PATH"
fi
python_bin="$(command -v python3 || command -v python || true)"

mkdir -p "$out"
json="$out/r.json"
junit="$out/junit.xml"
markdown="$out/summary.md"
html="$out/report.html"
# Files left by an earlier run must never be published as this run's result.
rm -f "$json" "$junit" "$markdown" "$html"

status=0
grader check "$path" --min-grade "$min_grade" --rubric "$rubric" \
    --json "$json" --junit "$junit" --markdown "$markdown" --html "$html" || status=$?

if [ -s "$markdown" ]; then
    cat "$markdown" >> "$summary_file"
else
    printf '## redis-grader could not grade this submission\n\n`grader check` exited with code %s and wrote no report; see the job log.\n' \
        "$status" >> "$summary_file"
fi

grade=""
if [ -s "$json" ] && [ -n "$python_bin" ]; then
    # One "key=value" per line; newlines are stripped so a value can never start a second output.
    if outputs="$("$python_bin" - "$json" <<'PY'
import json
import sys

with open(sys.argv[1], encoding="utf-8") as handle:
    doc = json.load(handle)
score = doc.get("score")
values = {"grade": doc.get("grade") or "", "score": "" if score is None else score}
for key, value in values.items():
    print(f"{key}=" + " ".join(str(value).split()))
PY
)"; then
        printf '%s\n' "$outputs" >> "$output_file"
        grade="$(printf '%s\n' "$outputs" | sed -n 's/^grade=//p')"
    else
        echo "::warning title=redis-grader::could not read $json; the grade and score outputs are not set"
    fi
fi

for report in json:"$json" junit:"$junit" markdown:"$markdown" html:"$html"; do
    file="${report#*:}"
    [ -s "$file" ] || file=""
    printf '%s-path=%s\n' "${report%%:*}" "$file" >> "$output_file"
done

# One annotation per failed check. The evidence's paths are relative to the submission; the pull request's
# files are relative to the workspace, where INPUT_PATH points.
if [ -s "$json" ] && [ -n "$python_bin" ]; then
    "$python_bin" - "$json" "$path" <<'PY' || echo "::warning title=redis-grader::could not annotate the failed checks"
import json
import os
import sys

from grader.reporters._common import read_result
from grader.reporters.gradescope import costs_points
from grader.reporters.junit import code_location


def escape(text: str, *, prop: bool = False) -> str:
    # GitHub's workflow-command escaping; a property value also escapes its separators.
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


with open(sys.argv[1], encoding="utf-8") as handle:
    report = read_result(json.load(handle))
for check in report.checks:
    if not (check.problem or costs_points(check)):
        continue
    props = []
    location = code_location(check.raw_evidence)
    if location:
        file = os.path.normpath(os.path.join(sys.argv[2], location[0]))
        props += [f"file={escape(file, prop=True)}", f"line={location[1]}"]
    props.append(f"title={escape(check.id, prop=True)}")
    print(f"::error {','.join(props)}::{escape(check.message or check.outcome)}")
PY
fi

case "$status" in
    0) echo "::notice title=redis-grader::grade ${grade:-?} (required: $min_grade or better)" ;;
    1) echo "::error title=redis-grader::grade ${grade:-?} is below the required $min_grade" ;;
    *) echo "::error title=redis-grader::grader check failed with exit code $status (see the log above)" ;;
esac
exit "$status"
