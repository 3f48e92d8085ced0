"""Reports (workflow/rules/report.smk): evaluate, explain, baselines, report.

evaluate scores one model on valid and test; scores writes the classification report every
scored model gets (CNNs and baselines); explain draws what a model looks at; baselines fits
scikit-learn models to compare against; report writes the comparison and the run's summary, results/report/summary.json, last.
"""
