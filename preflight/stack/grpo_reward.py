"""The GRPO smoke's reward: loaded by ms-swift itself (`--external_plugins THIS_FILE
--reward_funcs preflight_length`), never imported by preflight.

It scores a completion by its length, so the group's rewards differ and the advantages
are not all zero: a constant reward (swift's `format` on a random model) makes GRPO's
loss and gradient exactly 0, and a smoke that cannot move the weights proves nothing.
Offline and deterministic: no model, no network.
"""

try:  # ms-swift 4.x
    from swift.rewards import ORM, orms
except ImportError:  # ms-swift 3.x
    from swift.plugin import ORM, orms

NAME = "preflight_length"


# ms-swift ships no type information (mypy sees ORM as Any): subclassing it is the plugin API.
class CompletionLength(ORM):  # type: ignore[misc]
    def __call__(self, completions: list[str], **kwargs: object) -> list[float]:
        return [min(len(c), 64) / 64.0 for c in completions]


orms[NAME] = CompletionLength
