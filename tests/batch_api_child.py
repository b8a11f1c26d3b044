"""A corpus run through the Batch API in its own process, for the test that kills it once its first
job is submitted: `python -m tests.batch_api_child BASE_URL RUNS_DIR STATE_DIR ARTICLES`.

It polls only once a minute, so it is still waiting on its first job when it is killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from pipeline import api, sources
from pipeline.article import with_metadata
from pipeline.batch_api import BatchJobs, Polling, batch_api_client
from pipeline.engine import Settings

SEED = Path(__file__).resolve().parent.parent / "seeds" / "putin-assad-syria.txt"


async def main(base_url: str, runs_dir: Path, state_dir: Path, count: int) -> None:
    settings = Settings()
    polling = Polling(settle=0.2, first=60.0, longest=60.0)
    key = os.environ["OPENAI_API_KEY"]
    async with BatchJobs(base_url=base_url, api_key=key, state_dir=state_dir, polling=polling) as jobs:
        runs = []
        for index in range(count):
            article = with_metadata(sources.load(str(SEED)), title=f"Op-ed {index + 1}")
            run_dir = api.new_run_dir(article, runs_dir)
            client = batch_api_client(jobs, settings=settings, run_id=run_dir.id)
            runs.append(api.run_brief(article, settings, client, runs_dir=runs_dir, run_dir=run_dir))
        await asyncio.gather(*runs)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])))
