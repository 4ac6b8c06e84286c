"""What a study means: choice and refit, test scores, baselines, diagnosis, report, plots, LR range test."""
