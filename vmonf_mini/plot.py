"""The paper's figures, drawn with matplotlib; every function puts the model in eval mode (chapters 4-8).

The original code plotted in training mode, so batch norm used the plot grid's statistics
(defect 4); here each plot runs the model in eval mode and restores its mode afterwards.

The figures take a :class:`~vmonf_mini.VMoNF` or any fitted mixture with scikit-learn's
methods (``predict_proba``, ``score_samples``, ``sample``): a ``GaussianMixture`` or a
:class:`~vmonf_mini.estimator.MixtureOfFlows` is drawn by the same code, so baselines and models compare
panel by panel.

Example:
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from vmonf_mini import VMoNF
    >>> from vmonf_mini.plot import decision_regions
    >>> ax = decision_regions(VMoNF(dim=2, k=3, blocks=1), n_samples=50)
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.colors import ListedColormap

from .checks import check_positive_int
from .metrics import match_clusters
from .training import History
from .mixture import VMoNF

__all__ = [
    "eval_mode",
    "decision_regions",
    "density_map",
    "component_samples",
    "contingency_heatmap",
    "training_curves",
    "epoch_curves",
    "contingency_panels",
    "EPOCH_CURVE_LABELS",
    "image_rows",
    "density_grid",
    "class_colors",
    "component_colors",
    "PALETTE",
    "COLORS",
    "figure_alt_text",
]


def _hex(code: str) -> Tuple[float, float, float]:
    return tuple(int(code[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


#: The book's one categorical palette, which colour-blind readers can tell apart. It holds the
#: eight colours of Okabe and Ito ("Color Universal Design", 2008; blue, orange, bluish green,
#: vermillion, reddish purple, sky blue, yellow, black), then Paul Tol's wine and olive. Class,
#: component and seed ``i`` take ``PALETTE[i]``. Importing this module also makes it
#: matplotlib's colour cycle (``C0``, ``C1``... and the default line colours).
PALETTE: Tuple[Tuple[float, float, float], ...] = tuple(
    _hex(code)
    for code in (
        "#0072B2",
        "#E69F00",
        "#009E73",
        "#D55E00",
        "#CC79A7",
        "#56B4E9",
        "#F0E442",
        "#000000",
        "#882255",
        "#999933",
    )
)
plt.rcParams["axes.prop_cycle"] = plt.cycler(color=PALETTE)


def figure_alt_text(fig: Figure) -> str:
    """A one-line description of ``fig`` for readers who cannot see it: its title, then each
    panel's title and what its axes hold.

    Importing this module in IPython (a notebook, Colab, the book's build) makes every inline
    PNG of a figure carry this text as its ``Description``; the book's Sphinx extension
    (``tools/book_ext.py``) turns it into the HTML's ``alt`` text.

    >>> fig, ax = plt.subplots()
    >>> _ = ax.set(title="Loss", xlabel="epoch", ylabel="loss")
    >>> figure_alt_text(fig)
    'Figure: Loss (loss against epoch)'
    >>> plt.close(fig)
    """
    parts: List[str] = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        parts.append(suptitle.get_text())
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        title = " ".join(
            t
            for t in (ax.get_title("left"), ax.get_title(), ax.get_title("right"))
            if t
        )
        x, y = ax.get_xlabel(), ax.get_ylabel()
        held = f"{y} against {x}" if x and y else (x or y)
        piece = f"{title} ({held})" if title and held else (title or held)
        if piece and piece not in parts:
            parts.append(piece)
    text = "; ".join(parts) if parts else "a figure without titles"
    return "Figure: " + " ".join(text.replace("$", "").split())


def _describe_inline_figures() -> None:
    """Wrap IPython's PNG formatter for figures so that each PNG carries its alt text.

    The inline backend registers its formatter when its module is first imported, which pyplot
    does only when the first figure is made: import it now, so that a figure shown by
    ``plt.show()`` in the next cell carries its text too; and wrap again after every cell if the
    formatter was replaced (``%matplotlib inline``, ``%config InlineBackend``)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with every notebook
        return
    shell = get_ipython()
    if shell is None or getattr(shell, "_vmonf_alt_text_hook", False):
        return
    shell._vmonf_alt_text_hook = True
    try:
        if "inline" in str(matplotlib.get_backend()):
            importlib.import_module("matplotlib_inline.backend_inline")
    except Exception:
        pass  # another backend, or none: the formatter is wrapped after each cell
    shell.events.register("post_execute", lambda: _wrap_png_formatter(shell))
    _wrap_png_formatter(shell)


def _wrap_png_formatter(shell: Any) -> None:
    png = shell.display_formatter.formatters.get("image/png")
    try:
        current = png.lookup_by_type(Figure)
    except (AttributeError, KeyError):
        return
    if getattr(current, "vmonf_alt_text", False):
        return

    def with_alt_text(fig: Figure) -> Any:
        try:
            return current(fig, metadata={"Description": figure_alt_text(fig)})
        except TypeError:  # a formatter that takes no savefig options: no alt text
            return current(fig)

    with_alt_text.vmonf_alt_text = True  # type: ignore[attr-defined]
    png.for_type(Figure, with_alt_text)


_describe_inline_figures()
#: ``PALETTE``, then the distinct colours of ``Set2``, ``tab20``, ``tab20b`` and ``tab20c`` that
#: it does not hold (68 in all): the colours of components beyond ten, or unmatched to a class
COLORS: Tuple[Tuple[float, float, float], ...] = tuple(
    dict.fromkeys(
        list(PALETTE)
        + [
            tuple(c)
            for name in ("Set2", "tab20", "tab20b", "tab20c")
            for c in plt.get_cmap(name).colors
        ]
    )
)


class _FittedMixture:
    """A fitted scikit-learn mixture (``GaussianMixture``, :class:`~vmonf_mini.estimator.MixtureOfFlows`)
    seen through the few methods of :class:`~vmonf_mini.VMoNF` that the figures call."""

    def __init__(self, estimator: Any) -> None:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(estimator)
        self.estimator = estimator
        self.k = int(estimator.n_components)
        self.dim = int(estimator.n_features_in_)
        self._rng = np.random.default_rng(0)

    def sample(self, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        x, c = self.estimator.sample(int(n))
        order = self._rng.permutation(
            len(x)
        )  # scikit-learn returns the samples component by component
        return torch.as_tensor(np.asarray(x)[order]), torch.as_tensor(
            np.asarray(c)[order]
        )

    def sample_each_component(self, n: int) -> torch.Tensor:
        """(k, n, dim): samples drawn from the mixture, sorted by component (enough draws for each)."""
        weights = np.asarray(
            getattr(self.estimator, "weights_", np.full(self.k, 1.0 / self.k))
        )
        draws = int(np.ceil(4 * n / max(weights.min(), 1e-3)))
        x, c = self.estimator.sample(draws)
        x, c = np.asarray(x), np.asarray(c)
        rows = []
        for comp in range(self.k):
            mine = x[c == comp][:n]
            if len(mine) < n:
                raise ValueError(
                    f"component {comp} has too small a weight to draw {n} samples from it"
                )
            rows.append(mine)
        return torch.as_tensor(np.stack(rows))

    def _numpy(self, grid: Any) -> np.ndarray:
        return np.asarray(
            grid.detach().cpu() if hasattr(grid, "detach") else grid, dtype=float
        )

    def posterior(self, grid: Any, temperature: float = 1.0) -> torch.Tensor:
        return torch.as_tensor(self.estimator.predict_proba(self._numpy(grid)))

    exact_posterior = posterior

    def log_prob(self, grid: Any) -> torch.Tensor:
        return torch.as_tensor(self.estimator.score_samples(self._numpy(grid)))


def _as_mixture(model: Any) -> Any:
    if isinstance(model, torch.nn.Module):
        return model
    if all(
        hasattr(model, name)
        for name in ("predict_proba", "score_samples", "sample", "n_components")
    ):
        return _FittedMixture(model)
    raise TypeError(
        f"expected a VMoNF or a fitted mixture with predict_proba, score_samples and sample, "
        f"got {type(model).__name__}"
    )


@contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """Run a block with ``model.eval()`` and ``torch.no_grad()``, then restore the previous mode.

    Anything that is not a torch module (a fitted scikit-learn mixture) passes through unchanged."""
    if not isinstance(model, torch.nn.Module):
        with torch.no_grad():
            yield model
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def _limits(
    points: np.ndarray, margin: float = 0.15
) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    lo, hi = points.min(0), points.max(0)
    pad = margin * (hi - lo + 1e-9)
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def _grid(
    points: np.ndarray, resolution: int
) -> Tuple[Tuple[float, float, float, float], Tuple[int, int], np.ndarray]:
    """A ``resolution`` x ``resolution`` grid over the points' box plus a margin:
    ``(extent for imshow, grid shape, (resolution**2, 2) grid points)``."""
    (x0, x1), (y0, y1) = _limits(points)
    gx, gy = np.meshgrid(
        np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    )
    return (x0, x1, y0, y1), gx.shape, np.stack([gx.ravel(), gy.ravel()], 1)


def component_colors(k: int) -> List[Tuple[float, float, float]]:
    """The default colours of ``k`` components: ``COLORS[:k]``, repeating beyond ``len(COLORS)``.

    >>> component_colors(3) == list(PALETTE[:3]), len(set(component_colors(20)))
    (True, 20)
    """
    k = check_positive_int(k, "k")
    return [COLORS[c % len(COLORS)] for c in range(k)]


def class_colors(y: Any, clusters: Any, k: int) -> List[Tuple[float, float, float]]:
    """One colour per component: the colour of the true class it is matched to (Hungarian
    matching of ``clusters`` against the labels ``y``), so that a model's panel and the data's
    panel (coloured ``PALETTE[label]``) use the same colour for the same class; unmatched
    components get colours no class uses (chapter 6).

    Class ``label`` has colour ``COLORS[label]`` (``PALETTE[label]`` for labels 0 to 9); the
    unmatched components take the colours of ``COLORS`` that no label uses, in order, and
    repeat them only beyond ``len(COLORS)`` colours in all.

    >>> class_colors([0, 0, 1, 1], [1, 1, 0, 0], k=2) == [PALETTE[1], PALETTE[0]]
    True
    >>> len(set(class_colors([0, 1] * 10, range(20), k=20)))
    20
    """
    k = check_positive_int(k, "k")
    match = match_clusters(y, clusters)
    negative = sorted(label for label in match.values() if label < 0)
    if negative:
        raise ValueError(
            f"class labels must be 0 or more (class i has colour COLORS[i]), got {negative}"
        )
    used = {label % len(COLORS) for label in match.values()}
    spare = [c for i, c in enumerate(COLORS) if i not in used] or list(COLORS)
    unmatched = [c for c in range(k) if c not in match]
    colors = {c: spare[i % len(spare)] for i, c in enumerate(unmatched)}
    colors.update({c: COLORS[label % len(COLORS)] for c, label in match.items()})
    return [colors[c] for c in range(k)]


def _cmap(k: int, colors: Optional[Sequence] = None) -> ListedColormap:
    if colors is None:
        return ListedColormap(component_colors(k))
    colors = list(colors)
    if len(colors) != k:
        raise ValueError(
            f"colors needs one colour per component ({k}), got {len(colors)}"
        )
    return ListedColormap(colors)


def decision_regions(
    model: Any,
    x: Optional[torch.Tensor] = None,
    n_samples: int = 1000,
    resolution: int = 200,
    temperature: float = 1.0,
    exact: bool = False,
    ax: Optional[Axes] = None,
    title: Optional[str] = None,
    colors: Optional[Sequence] = None,
) -> Axes:
    """The paper's Figure 1: where q(c|x) picks each component, with samples coloured by component.

    Args:
        model: a 2-D VMoNF, or a fitted mixture such as scikit-learn's ``GaussianMixture``
            (its regions are those of ``predict_proba``).
        x: optional data, drawn in grey underneath and used for the plot's limits.
        n_samples: model samples drawn on top, coloured by the component that generated them.
        resolution: grid points per axis for the regions.
        temperature: the posterior's temperature.
        exact: colour regions by the exact posterior p(c|x) instead of q(c|x).
        colors: one colour per component (default :func:`component_colors`: ``PALETTE``,
            then more of ``COLORS`` beyond ten); :func:`class_colors` matches them to the
            true classes.
    """
    model = _as_mixture(model)
    if model.dim != 2:
        raise ValueError(f"decision_regions needs a 2-D model, got dim={model.dim}")
    ax = ax or plt.subplots(figsize=(5, 5))[1]
    cmap = _cmap(model.k, colors)
    with eval_mode(model):
        samples, comp = model.sample(n_samples)
        ref = samples if x is None else torch.as_tensor(x, dtype=samples.dtype)
        extent, shape, grid = _grid(
            ref.cpu().numpy(), resolution
        )  # the model casts the grid to its dtype/device
        post = (
            model.exact_posterior(grid) if exact else model.posterior(grid, temperature)
        )
        region = post.argmax(1).cpu().numpy().reshape(shape)
    ax.imshow(
        region,
        origin="lower",
        extent=extent,
        cmap=cmap,
        alpha=0.25,
        vmin=-0.5,
        vmax=model.k - 0.5,
        aspect="auto",
        interpolation="nearest",
    )
    if x is not None:
        ax.scatter(*ref.cpu().numpy().T, s=2, c="0.6", label="data")
    s = samples.cpu().numpy()
    ax.scatter(
        s[:, 0],
        s[:, 1],
        s=4,
        c=comp.cpu().numpy(),
        cmap=cmap,
        vmin=-0.5,
        vmax=model.k - 0.5,
    )
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    ax.set_title(
        title or ("p(c|x)" if exact else "q(c|x)") + " regions and samples by component"
    )
    return ax


def density_map(
    model: Any,
    x: Optional[torch.Tensor] = None,
    resolution: int = 200,
    floor: Optional[float] = None,
    ax: Optional[Axes] = None,
    title: Optional[str] = None,
    colorbar: bool = True,
) -> Axes:
    """The learned density ``log p(x)`` of a 2-D model on a grid, exact, in eval mode (chapter 7, Figure 2).

    Args:
        model: a 2-D VMoNF, or a fitted mixture such as scikit-learn's ``GaussianMixture``.
        x: optional data; sets the plot's limits (default: limits of 1,000 model samples).
        resolution: grid points per axis.
        floor: values below it are drawn at it (default: 12 nats below the grid's maximum),
            so that the near-empty regions do not wash out the colour scale.
        colorbar: draw a colour bar beside the axes.
    """
    model = _as_mixture(model)
    if model.dim != 2:
        raise ValueError(f"density_map needs a 2-D model, got dim={model.dim}")
    ax = ax or plt.subplots(figsize=(5.5, 5))[1]
    with eval_mode(model):
        ref = model.sample(1000)[0] if x is None else torch.as_tensor(x)
        extent, shape, grid = _grid(ref.detach().cpu().numpy(), resolution)
        log_p = model.log_prob(grid).cpu().numpy().reshape(shape)
    low = log_p.max() - 12.0 if floor is None else floor
    image = ax.imshow(
        np.maximum(log_p, low),
        origin="lower",
        extent=extent,
        cmap="magma",
        aspect="auto",
    )
    if colorbar:
        ax.figure.colorbar(
            image, ax=ax, shrink=0.8, label=f"log p(x) (floored at {low:.1f})"
        )
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    ax.set_title(title or "learned density log p(x)")
    return ax


def image_rows(
    rows: Any,
    image_shape: Tuple[int, int] = (28, 28),
    title: Optional[str] = None,
    fig: Optional[plt.Figure] = None,
) -> plt.Figure:
    """A grid of grey images in [0, 1], one row per component: the layout of the paper's Figure 3
    (chapter 8). ``rows`` is ``(k, n, pixels)`` (a tensor or an array).

    >>> import matplotlib; matplotlib.use("Agg")
    >>> image_rows(np.zeros((2, 3, 4)), image_shape=(2, 2)).axes.__len__()
    6
    """
    rows = np.asarray(
        rows.detach().cpu().float() if hasattr(rows, "detach") else rows, dtype=float
    )
    if rows.ndim != 3:
        raise ValueError(
            f"rows must be (components, images, pixels), got shape {rows.shape}"
        )
    k, n = rows.shape[:2]
    fig = fig or plt.figure(figsize=(n * 0.9, k * 0.95))
    axes = fig.subplots(k, n, squeeze=False)
    for c in range(k):
        for j in range(n):
            axes[c, j].imshow(
                np.clip(rows[c, j].reshape(image_shape), 0, 1),
                cmap="gray_r",
                vmin=0,
                vmax=1,
            )
            axes[c, j].set_xticks([])
            axes[c, j].set_yticks([])
        axes[c, 0].set_ylabel(f"c={c}", rotation=0, labelpad=18, va="center")
    if title:
        fig.suptitle(title)
    return fig


def component_samples(
    model: Any,
    n_per_component: int = 8,
    image_shape: Tuple[int, int] = (28, 28),
    transform: Optional[Callable[[torch.Tensor], Any]] = None,
    fig: Optional[plt.Figure] = None,
    title: Optional[str] = None,
) -> plt.Figure:
    """The paper's Figure 3: a row of samples per component, shown as images (:func:`image_rows`).

    ``model`` is a VMoNF or a fitted mixture such as scikit-learn's ``GaussianMixture``;
    ``transform`` maps model space back to pixels (e.g. undo a logit or PCA), default identity.
    """
    n_per_component = check_positive_int(n_per_component, "n_per_component")
    model = _as_mixture(model)
    with eval_mode(model):
        drawn = model.sample_each_component(n_per_component).flatten(0, 1)
        if transform is not None:
            drawn = transform(drawn)
        drawn = torch.as_tensor(
            np.asarray(drawn.detach().cpu() if hasattr(drawn, "detach") else drawn)
        )
        rows = drawn.reshape(model.k, n_per_component, -1)
    return image_rows(rows, image_shape, title=title, fig=fig)


def density_grid(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    lim: float = 2.5,
    n: int = 100,
    device: Union[torch.device, str, None] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 2-D density on an ``n`` x ``n`` grid over ``[-lim, lim]^2``, for ``contourf`` or
    ``pcolormesh``: ``(gx, gy, density)`` on the CPU (chapter 2).

    ``log_prob`` maps ``(N, 2)`` points to ``(N,)`` log-densities; the grid is made on ``device``.

    >>> gx, gy, dens = density_grid(lambda z: -0.5 * (z**2).sum(1), n=5)
    >>> dens.shape, float(dens.max())
    (torch.Size([5, 5]), 1.0)
    """
    n = check_positive_int(n, "n")
    ticks = torch.linspace(-lim, lim, n, device=device)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="xy")
    with torch.no_grad():
        dens = log_prob(torch.stack([gx, gy], -1).reshape(-1, 2)).exp().reshape(n, n)
    return gx.cpu(), gy.cpu(), dens.detach().cpu()


def contingency_heatmap(
    table: np.ndarray,
    row_labels: Optional[Sequence] = None,
    ax: Optional[Axes] = None,
    title: str = "P(cluster | digit)",
    col_labels: Optional[Sequence] = None,
    row_name: str = "digit",
    col_name: str = "cluster",
) -> Axes:
    """Table 1 as a heatmap: rows are true classes (digits), columns clusters, each cell annotated.

    ``col_labels`` names the columns (e.g. the cluster indices of a matched order, so that the
    diagonal holds each digit's matched cluster: :func:`vmonf_mini.experiments.matched_table`).
    ``row_name`` and ``col_name`` title the axes by what they hold.
    """
    table = np.asarray(table, dtype=float)
    ax = (
        ax
        or plt.subplots(figsize=(1 + 0.8 * table.shape[1], 1 + 0.6 * table.shape[0]))[1]
    )
    ax.imshow(table, cmap="Blues", vmin=0, vmax=max(1.0, table.max()))
    for (i, j), v in np.ndenumerate(table):
        ax.text(
            j,
            i,
            f"{v:.2f}",
            ha="center",
            va="center",
            color="white" if v > 0.6 else "black",
            fontsize=8,
        )
    ax.set_xticks(
        range(table.shape[1]),
        labels=list(col_labels) if col_labels is not None else range(table.shape[1]),
    )
    ax.set_yticks(
        range(table.shape[0]),
        labels=list(row_labels) if row_labels is not None else range(table.shape[0]),
    )
    ax.set_xlabel(col_name)
    ax.set_ylabel(row_name)
    ax.set_title(title)
    return ax


def training_curves(history: History, ax: Optional[Axes] = None) -> Axes:
    """Loss per epoch (left axis) and the temperature (right axis)."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    epochs = np.arange(1, len(history.loss) + 1)
    ax.plot(epochs, history.loss, color=PALETTE[0], label="loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (negative ELBO)")
    twin = ax.twinx()
    twin.plot(
        epochs, history.temperature, color=PALETTE[1], ls="--", label="temperature"
    )
    twin.set_ylabel("temperature T")
    ax.figure.legend(loc="upper right", bbox_to_anchor=(0.9, 0.88))
    return ax


#: How :func:`epoch_curves` labels each logged quantity (the keys of
#: :data:`vmonf_mini.experiments.EPOCH_LOG_KEYS`).
EPOCH_CURVE_LABELS = {
    "acc": "matched accuracy (train)",
    "nmi": "NMI (train)",
    "clusters_in_use": "clusters in use",
    "temperature": "temperature T",
    "one_hot": "share of one-hot q(c|x)",
    "encoder_grad": "encoder gradient norm",
}


def epoch_curves(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    steps_per_epoch: int,
    keys: Sequence[str] = ("acc", "clusters_in_use", "encoder_grad", "one_hot"),
    log_scale: Sequence[str] = ("encoder_grad", "temperature"),
) -> Figure:
    """One panel per logged quantity in ``keys`` against training steps, one line per entry of
    ``curves`` (label -> a run's per-epoch log, as :class:`vmonf_mini.experiments.EpochLog`
    records it); the quantities in ``log_scale`` on a symlog axis, so an exact zero shows.
    Chapter 8.

    >>> fig = epoch_curves({"run": {"acc": [0.2, 0.5], "clusters_in_use": [5, 4],
    ...                             "encoder_grad": [1.0, 0.0], "one_hot": [0.0, 0.5]}}, 10)
    >>> len(fig.axes)
    4
    """
    # one colour per configuration (the label before ", seed"), one line style per seed
    groups: Dict[str, List[str]] = {}
    for label in curves:
        groups.setdefault(label.split(", seed")[0], []).append(label)
    styles = {
        label: dict(color=f"C{g % 10}", linestyle=("-", "--", ":", "-.")[i % 4])
        for g, labels in enumerate(groups.values())
        for i, label in enumerate(labels)
    }
    fig, axes = plt.subplots(
        1, len(keys), figsize=(3.3 * len(keys), 2.9), squeeze=False
    )
    for ax, key in zip(axes[0], keys):
        for label, log in curves.items():
            values = np.asarray(log[key], dtype=float)
            steps = steps_per_epoch * np.arange(1, len(values) + 1)
            ax.plot(steps, values, label=label, **styles[label])
        if key in log_scale:
            ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_xlabel("training step")
        ax.set_title(EPOCH_CURVE_LABELS.get(key, key), fontsize=9)
    columns = min(len(curves), 3)
    rows = -(-len(curves) // columns)
    legend_height = 0.17 * rows + 0.05  # inches below the panels
    fig.set_figheight(2.9 + legend_height)
    fig.legend(
        *axes[0][0].get_legend_handles_labels(),
        loc="lower center",
        ncol=columns,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, legend_height / (2.9 + legend_height), 1, 1))
    return fig


def contingency_panels(
    panels: Mapping[str, Tuple[Any, Sequence[Any]]], rows: Sequence[Any] = range(5)
) -> Figure:
    """Several :func:`contingency_heatmap` side by side: ``panels`` maps each title to a
    ``(table, col_labels)`` pair, rows labelled ``rows`` (chapter 8: the published Table 1
    beside the recorded runs').

    >>> import numpy as np
    >>> fig = contingency_panels({"a": (np.eye(2), [0, 1]), "b": (np.eye(2), [1, 0])}, rows=[0, 1])
    >>> len(fig.axes)
    2
    """
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False
    )
    for ax, (title, (table, col_labels)) in zip(axes[0], panels.items()):
        contingency_heatmap(np.asarray(table), rows, ax, title, col_labels)
    fig.tight_layout()
    return fig
