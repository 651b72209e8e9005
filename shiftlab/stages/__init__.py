"""The stages of a run: shift pretraining, fine-tuning (and re-evaluation) of each task, and the
bookkeeping that lets an interrupted run skip what finished."""
