"""instructor, run in .venv-instructor: `python instructor_cases.py BASE_URL MODEL MODE` prints JSON.

max_retries=0: the object must come out of the first call (guardproxy repairs the broken answer).
"""

from __future__ import annotations

import json
import sys

import instructor
import openai
from pydantic import BaseModel


class Person(BaseModel):
    name: str
    age: int


def main(base_url: str, model: str, mode: str) -> None:
    raw = openai.OpenAI(base_url=base_url, api_key="sk-compat", max_retries=0)
    client = instructor.from_openai(raw, mode=instructor.Mode[mode])
    person, completion = client.chat.completions.create_with_completion(
        model=model,
        response_model=Person,
        max_retries=0,
        messages=[{"role": "user", "content": "Ada Lovelace, 36, as a person."}],
    )
    print(json.dumps({"person": person.model_dump(), "id": completion.id}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
