"""Project-local scorers: any *.py file here is loaded by path, like a pytest conftest."""

from pydantic import BaseModel, ConfigDict

from canary.scoring import Scorer, ScoreInput, Verdict, scorer


class LowercaseArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allow: list[str] = []  # words that may keep their capitals


@scorer
class Lowercase(Scorer):
    """Passes when the reply has no capital letters outside the allowed words."""

    name = "lowercase"
    Args = LowercaseArgs

    def score(self, inp: ScoreInput) -> Verdict:
        text = inp.text
        for word in self.args.allow:
            text = text.replace(word, "")
        capitals = [ch for ch in text if ch.isupper()]
        if not inp.text.strip():
            return Verdict(False, 0.0, "empty reply")
        if capitals:
            return Verdict(False, 0.0, f"{len(capitals)} capital letters, e.g. {''.join(capitals[:5])!r}")
        return Verdict(True, 1.0, "all lowercase")
