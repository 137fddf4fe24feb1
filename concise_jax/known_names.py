"""Names the launch-time config check needs from modules too heavy to import for it.

`config_check` must report a bad flag without importing the model loaders, the data pipeline
(grain, tfds) or the trainer, whose modules own these names. Each tuple here must equal its
owner's list; tests/options_test.py compares them, so a new model, task, file format, LoRA
target or lr schedule that is not added here fails that test rather than a launch.
"""

# models.loading.KNOWN_MODELS; "tiny" is the test model.
MODELS = ("smollm2-135m-instruct",)
TEST_MODEL = "tiny"
# data.TASKS: built-in generated tasks (`task:<name>`).
TASKS = ("add_1digit", "addsub_1digit", "addsub_2digit", "arithmetic", "countdown",
         "linear_equations", "word_problems")
# data.sources.dataset_kinds(): "task" and every registered file format (`<format>:<path>`).
DATASET_KINDS = ("task", "gsm8k", "math", "mawps")
# train.lora.TARGETS: adaptable weights under params["layers"].
LORA_TARGETS = ("w_q", "w_k", "w_v", "w_o", "w_gate", "w_up", "w_down")
# train.optim.SCHEDULES.
LR_SCHEDULES = ("constant", "cosine")
# models.config.REMAT_POLICIES: per-layer rematerialisation in the backward.
REMAT_POLICIES = ("none", "dots", "full")
