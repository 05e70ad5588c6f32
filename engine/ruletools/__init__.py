"""Rule-file tooling that runs above the pipeline: every rule's examples (`rules check`) and the what-if replay
(`rules test --corpus`). engine/rules/ itself never imports the pipeline, the app or a message context (a test
reads its imports): rules are judged by the pipeline, and these judge rules with it."""
