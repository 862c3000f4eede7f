#!/usr/bin/env bash
# The GitHub Action's one grading step (action.yml runs it; tests/test_action.py runs it with a fake grader).
#
# Inputs come from the environment, never interpolated into the script, so a path or rubric name can hold
# any characters:
#   INPUT_PATH (default .), INPUT_MIN_GRADE (default C), INPUT_RUBRIC (default redis-module),
#   INPUT_OUTPUT_DIR (default .): where r.json, junit.xml and summary.md are written.
# It runs `grader check`, appends the Markdown report to $GITHUB_STEP_SUMMARY, writes grade= and score= to
# $GITHUB_OUTPUT, and exits with grader's own exit code (0 pass, 1 below --min-grade, 2 usage, 3 harness).
set -uo pipefail

path="${INPUT_PATH:-.}"
min_grade="${INPUT_MIN_GRADE:-C}"
rubric="${INPUT_RUBRIC:-redis-module}"
out="${INPUT_OUTPUT_DIR:-.}"
summary_file="${GITHUB_STEP_SUMMARY:-/dev/null}"
output_file="${GITHUB_OUTPUT:-/dev/null}"
python_bin="$(command -v python3 || command -v python || true)"

mkdir -p "$out"
json="$out/r.json"
junit="$out/junit.xml"
markdown="$out/summary.md"
# Files left by an earlier run must never be published as this run's result.
rm -f "$json" "$junit" "$markdown"

status=0
grader check "$path" --min-grade "$min_grade" --rubric "$rubric" \
    --json "$json" --junit "$junit" --markdown "$markdown" || status=$?

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

case "$status" in
    0) echo "::notice title=redis-grader::grade ${grade:-?} (required: $min_grade or better)" ;;
    1) echo "::error title=redis-grader::grade ${grade:-?} is below the required $min_grade" ;;
    *) echo "::error title=redis-grader::grader check failed with exit code $status (see the log above)" ;;
esac
exit "$status"
