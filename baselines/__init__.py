"""Methods, one module each; see `lmem.baselines` for the API and README for how to add one."""
