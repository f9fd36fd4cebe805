"""Round 28 (docs/robustness.md): the web app called from Python."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")


@pytest.mark.parametrize("name", ["fer2013new.csv", "fer2013.csv.gz"])
def test_create_app_refuses_a_data_sets_folder_as_its_own(make_client, tmp_path, name) -> None:
    from exprsim.errors import ArgumentError

    data = tmp_path / "FER"
    data.mkdir()
    (data / name).write_text("emotion,pixels,Usage\n")
    with pytest.raises(ArgumentError, match=f"data_dir {data}: holds {name}, a data set's"):
        make_client(data_dir=str(data))  # was: served, uploads among the data set's files
    assert sorted(p.name for p in data.iterdir()) == [name]  # nothing written there


def test_create_app_takes_a_folder_of_its_own(make_client, tmp_path) -> None:
    web = tmp_path / "web"
    client = make_client(data_dir=str(web))
    assert client.get("/").status_code == 200  # a folder without the data set's files
