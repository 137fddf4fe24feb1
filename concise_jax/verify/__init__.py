"""Answer extraction and verification for model completions (untrusted text, bounded work)."""
from concise_jax.verify.extract import extract_answer
from concise_jax.verify.extract import extract_number
from concise_jax.verify.pool import Verifier
from concise_jax.verify.verify import CHECKERS
from concise_jax.verify.verify import countdown_reference
from concise_jax.verify.verify import is_correct
from concise_jax.verify.verify import reference_of
