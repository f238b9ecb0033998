"""The ``posezoo`` application: the command line (:mod:`.cli`), what one ``posezoo predict`` / ``posezoo train`` run
does (:mod:`.predict_run`, :mod:`.train_run`), the model table (:mod:`.model_table`, cached by :mod:`.size_cache`)
and the benchmark suite (:mod:`.bench`). It stands on posecommon's library and reaches the model families only
through the registry; nothing in the library imports it."""
