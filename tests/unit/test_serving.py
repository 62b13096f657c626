"""The gunicorn settings module: a worker that has loaded the app freezes its heap."""

import gc

from fieldsync import serving


def test_a_worker_freezes_what_the_app_built_at_startup() -> None:
    gc.unfreeze()
    try:
        serving.post_worker_init(worker=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
