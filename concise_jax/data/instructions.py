"""Optional instruction suffixes appended to a bare `Example.prompt`.

Prompts stay bare in the data so the same item serves every prompt format; a config names the
suffix it wants. Extraction does not rely on any of them: SmolLM2-135M almost never writes a
requested `Answer: N` line, and it is more accurate when it answers briefly, so the verifier
falls back to the last number.
"""
from concise_jax.data.example import Example

INSTRUCTIONS = {
    "none": "",
    "brief": "Answer with just the number.",
    "step_by_step": "Think step by step.",
    "answer_line": "Think briefly, then give the final answer on its own line as 'Answer: N'.",
    "boxed": "Reason step by step and put the final answer in \\boxed{}.",
    "countdown": "Give a single expression, then 'Answer: <expression>'.",
}


def add_instruction(example: Example, instruction: str = "none") -> str:
  """The prompt text with an instruction after it.

  Args:
    example: the item.
    instruction: a key of `INSTRUCTIONS`, or literal text to append.

  Returns:
    `prompt`, or `prompt + "\\n" + suffix`.
  """
  suffix = INSTRUCTIONS.get(instruction, instruction)
  return f"{example.prompt}\n{suffix}" if suffix else example.prompt
