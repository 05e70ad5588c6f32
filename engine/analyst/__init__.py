"""The analyst's loop: 5656 reports -> campaigns -> labels -> a training set -> a promoted model.

    telfilter reports list|show|label|export|tui      (engine/analyst/cli.py)
    telfilter ml compare|promote|rollback             (engine/ml/cli.py, engine/analyst/compare.py, promote.py)

Theory of operation. `serve` is the one writer of DATA_DIR/reports.jsonl (append, fsync); this
package only reads it. A report is named by a digest of its line (`r` + 10 hex digits), which
stays the same however many reports are appended after it. Labels live beside the store in
DATA_DIR/labels.jsonl, an append-only log of {"id", "label", "time", "by"} records written under
an exclusive flock and fsynced; the last record for an id wins, "label": null clears it. So two
analysts labelling at once interleave whole lines, and serve's file is never opened for writing.

Campaigns are recomputed on every read (campaigns.py): reports whose texts are near duplicates
(64-bit SimHash within a Hamming distance, found through four 16-bit bands) or share the engine's
normalised-template key (engine/textnorm.template_key) form one campaign, named after its first
report (`c` + that report's digest), so a campaign keeps its name as reports are appended.
Labelling a campaign writes one label per report it holds at that moment; reports that join it
later show up as unlabelled in `reports list`.
"""
