"""book/_scripts/notebook_transforms.py: exercises as markdown, nbval tags, hidden setup cell, Colab GPU metadata.

Run on small notebooks built here and on copies of the book's own notebooks (never on the notebooks themselves)."""
import copy
import sys
from pathlib import Path

import nbformat
import pytest
from markdown_it import MarkdownIt
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbval.plugin import find_comment_markers, find_metadata_tags

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_scripts"))
sys.path.insert(0, str(Path(__file__).parent))
import notebook_transforms as T  # noqa: E402
from sync_notebooks import book_exercise_labels  # noqa: E402
from test_book_sources import problems  # noqa: E402

BOOK = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if "_build" not in p.parts)

EXERCISES = """## Exercises

````{exercise}
:label: ch07-first

How many tokens does a $512 \\times 512$ image give?
````

````{solution} ch07-first
:class: dropdown

$N = 1024$.

```python
print((512 // 16) ** 2)
```
````

```{exercise}
:label: ch07-second

    an indented code block first
```

```{solution} ch07-second
:class: dropdown

~~~python
x = 1
~~~
```"""


def nb_with(*cells):
    return new_notebook(cells=[new_markdown_cell("# 7. Title"), new_code_cell("# setr-edu setup\n"), *cells])


def test_exercises_become_markdown_with_collapsed_solutions():
    nb = nb_with(new_markdown_cell(EXERCISES))
    labels = T.exercises(nb, Path("ch07_whole_setr.ipynb"))
    src = nb.cells[2].source
    assert labels == {"ch07-first": "7.1", "ch07-second": "7.2"}
    assert "{exercise}" not in src and "{solution}" not in src and ":label:" not in src
    assert '<a id="ch07-first"></a>**Exercise 7.1.** How many tokens' in src  # the lead-in joins the paragraph
    assert '<a id="ch07-second"></a>**Exercise 7.2.**\n\n    an indented code block first' in src
    html = MarkdownIt("commonmark").render(src)  # GitHub's parser family (cmark)
    first, second = html.split("<details>")[1:]
    assert "<summary>Solution</summary>" in first and "$N = 1024$" in first
    assert '<pre><code class="language-python">print((512 // 16) ** 2)' in first.split("</details>")[0]
    assert '<pre><code class="language-python">x = 1' in second.split("</details>")[0]
    assert "an indented code block first" not in first.split("</details>")[0]  # exercises stay outside


def test_exercises_are_idempotent_and_renumbered_in_order():
    nb = nb_with(new_markdown_cell(EXERCISES))
    T.exercises(nb, Path("ch07_x.ipynb"))
    once = copy.deepcopy(nb)
    T.exercises(nb, Path("ch07_x.ipynb"))
    assert nb == once
    # a new directive written before the converted ones takes number 1 and shifts them
    nb.cells.insert(2, new_markdown_cell("```{exercise}\n:label: ch07-new\n\nA new one.\n```"))
    T.exercises(nb, Path("ch07_x.ipynb"))
    assert "**Exercise 7.1.** A new one." in nb.cells[2].source
    assert "**Exercise 7.2.** How many" in nb.cells[3].source and "**Exercise 7.3.**" in nb.cells[3].source


def test_refs_to_exercises_become_text():
    nb = nb_with(new_markdown_cell(EXERCISES),
                 new_markdown_cell("See {ref}`ch07-second`, {ref}`that one <ch02-ex-x>` and {ref}`sec-other`."))
    T.exercises(nb, Path("ch07_x.ipynb"), other_labels={"ch02-ex-x": "2.4"})
    assert nb.cells[3].source == "See Exercise 7.2, Exercise 2.4 and {ref}`sec-other`."


def test_exercise_errors_say_what_to_fix():
    with pytest.raises(T.ExerciseError, match="never closed"):
        T.exercises(nb_with(new_markdown_cell("```{exercise}\n:label: a\n\ntext")), Path("ch01_x.ipynb"))
    with pytest.raises(T.ExerciseError, match="chNN"):
        T.exercises(nb_with(new_markdown_cell("```{exercise}\nx\n```")), Path("a1_patch.ipynb"))


def nbval_options(cell) -> dict:
    """What nbval does with a cell (comments override tags), as nbval itself computes it."""
    options = dict(find_metadata_tags(cell.metadata))
    options.update(find_comment_markers(cell.source))
    return options


def test_nbval_markers_become_tags():
    cells = [new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)"), new_code_cell("print(2)  # not a marker: NBVAL_SKIP"),
             new_code_cell("# NBVAL_CHECK_OUTPUT\nx = 1", metadata={"tags": ["nbval-ignore-output", "hide-input"]})]
    nb = nb_with(*cells)
    before = [nbval_options(c) for c in nb.cells]
    T.nbval_tags(nb)
    assert [nbval_options(c) for c in nb.cells] == before
    assert nb.cells[2].source == "print(1)" and nb.cells[2].metadata.tags == ["nbval-check-output"]
    assert nb.cells[3].source == "print(2)  # not a marker: NBVAL_SKIP" and "tags" not in nb.cells[3].metadata
    assert nb.cells[4].metadata.tags == ["hide-input", "nbval-check-output"]


def test_setup_cell_hidden_and_colab_gpu_metadata():
    nb = nb_with()
    T.apply(nb, Path("ch12_gpu_training.ipynb"), nb.cells[1])
    assert nb.cells[1].metadata.tags == ["remove-cell"]
    assert nb.metadata["accelerator"] == "GPU" and nb.metadata["colab"]["gpuType"] == "T4"
    T.apply(nb, Path("ch11_pretrained.ipynb"), nb.cells[1])  # a chapter leaving the GPU list loses the metadata
    assert "accelerator" not in nb.metadata and "colab" not in nb.metadata
    assert nb.cells[1].metadata.tags == ["remove-cell"]


@pytest.fixture(scope="module")
def labels():
    return book_exercise_labels()


@pytest.mark.parametrize("path", BOOK, ids=lambda p: p.relative_to(ROOT / "book").as_posix())
def test_on_a_copy_of_every_book_notebook(path, labels):
    """After the transforms a book notebook passes tests/test_book_sources.py, nbval checks the same cells with
    the same options, the code is unchanged but for the markers, and a second pass changes nothing."""
    nb = nbformat.read(path, as_version=4)
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    after = copy.deepcopy(nb)
    T.apply(after, path, after.cells[setup], other_labels=labels)
    assert problems(after, path) == []
    assert len(after.cells) == len(nb.cells)
    for old, new in zip(nb.cells, after.cells):
        if old.cell_type == "code":
            assert nbval_options(new) == nbval_options(old)
            assert [ln for ln in old.source.splitlines() if "NBVAL_" not in ln] == new.source.splitlines()
    again = copy.deepcopy(after)
    T.apply(again, path, again.cells[setup])
    assert again == after
