"""Figures of the reproduction pipeline (PNG and PDF, headless, deterministic file names).

Each figure function takes an output directory and returns the list of paths it wrote:

- :func:`error_vs_sparsity`: error against sparsity per regulariser, bands over seeds, one facet per pruning method
- :func:`figure_1c`: one neuron's surviving incoming weights over the neuron positions, moduli vs random pruning
- :func:`inhibitor_profiles`: the inhibitors f(d), and the DoG over the torus / Klein bottle domains
- :func:`embedding_snapshots`: learned neuron positions over the training epochs
- :func:`persistence_diagram`: persistent homology of neuron positions (needs ``pip install "moduli[tda]"``)
- :func:`training_curves`: loss, metric and sparsity against the step of one or several runs
"""

from .connectivity import NeuronConnectivity, figure_1c, median_neuron, neuron_connectivity
from .embeddings import embedding_snapshots, load_embedding_snapshots, planar_coordinates, select_snapshots
from .inhibitor_profiles import coefficient_grid, inhibitor_curves, inhibitor_profiles
from .persistence import persistence, persistence_diagram
from .sparsity_curves import error_vs_sparsity
from .training_curves import curves_frame, training_curves

__all__ = [
    "error_vs_sparsity",
    "figure_1c",
    "neuron_connectivity",
    "NeuronConnectivity",
    "median_neuron",
    "inhibitor_profiles",
    "inhibitor_curves",
    "coefficient_grid",
    "embedding_snapshots",
    "load_embedding_snapshots",
    "select_snapshots",
    "planar_coordinates",
    "persistence_diagram",
    "persistence",
    "training_curves",
    "curves_frame",
]
