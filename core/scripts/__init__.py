"""Runnable nnsight scripts that reproduce exactly what a page or CLI command computed.

Each module builds the scripts of one kind of result from that result's own data (the
prompts, targets, heads and layer the app used), with no model work: :mod:`.common` holds
the shared parts (header, model loading, layout table, JSON output, writing a file),
:mod:`.traces` the last-token measurements the analysis scripts share,
:mod:`.predict` predictions and accuracy, :mod:`.task_vectors` the h-vector and its layer
sweep, :mod:`.attribution` mean head activations and the indirect-effect grid,
:mod:`.function_vector` the function vector, its evaluation and decoding,
:mod:`.steering` every kind of steering, :mod:`.heads` induction scores and the ablation
curves, :mod:`.compare` several tasks compared, and :mod:`.report` the task report's numbers.
"""
