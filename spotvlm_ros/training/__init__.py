"""Training of the demo models: a tiny Qwen2.5-VL LVLM and SVLM on the synthetic world.

``spotvlm train-demo --role lvlm|svlm`` builds the data (:mod:`.data`; SVLM prompts recorded from the
real runtime, :mod:`.context_data`), trains with a curriculum (:mod:`.recipe`, :mod:`.trainer`),
evaluates on a fresh held-out set through the normal backend (:mod:`.evaluate`) and exports a
``from_pretrained`` directory with its training info and log (:mod:`.export`).
"""
