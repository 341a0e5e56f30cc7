"""Fixtures shared by the session config tests."""

import pytest

from coi_sentinel.sessions import config


@pytest.fixture
def files(tmp_path):
    """write(user_text, ws_text) writes the user's and the workspace's config files and loads
    the result; .ws and .user are their paths."""
    user = tmp_path / "user.toml"
    ws = tmp_path / "ws"
    ws.mkdir()

    def write(user_text=None, ws_text=None):
        if user_text is not None:
            user.write_text(user_text)
        if ws_text is not None:
            (ws / config.WORKSPACE_FILE).write_text(ws_text)
        return config.load(ws, user_file=user)

    write.ws = ws
    write.user = user
    return write
