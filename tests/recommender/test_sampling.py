"""Item-pair batches and PinSage neighbour blocks."""
import dgl
import torch

from recommender.graph import build_interaction_graph
from recommender.sampling import VISITS, ItemPairSampler, NeighborSampler, WalkConfig, seeds_of


def tiny_graph(tiny_interactions):
    return build_interaction_graph(tiny_interactions.interactions, tiny_interactions.catalogue.movie_ids)


def test_pairs_are_co_rated_and_never_self(tiny_interactions) -> None:
    built = tiny_graph(tiny_interactions)
    batch = ItemPairSampler(built, torch.Generator().manual_seed(0)).sample(64)
    assert batch.heads.shape == batch.tails.shape == batch.negatives.shape
    assert len(batch.heads) > 32 and not torch.any(batch.heads == batch.tails)
    raters = {m: set(built.graph.predecessors(m, etype="rated").tolist()) for m in range(8)}
    for head, tail in zip(batch.heads.tolist(), batch.tails.tolist()):
        assert raters[head] & raters[tail], "a positive pair shares at least one rater"
    assert 7 not in batch.heads.tolist()  # the unrated movie is never a head


def test_blocks_chain_from_inputs_to_seeds_with_visit_weights(tiny_interactions) -> None:
    built = tiny_graph(tiny_interactions)
    dgl.seed(0)
    sampler = NeighborSampler(built, WalkConfig(num_layers=2, num_random_walks=5, num_neighbors=3))
    seeds = torch.tensor([0, 4, 7])
    blocks = sampler.blocks(seeds)
    assert len(blocks) == 2
    assert torch.equal(blocks[-1].dstdata[dgl.NID], seeds)
    assert torch.equal(blocks[0].dstdata[dgl.NID], blocks[1].srcdata[dgl.NID])
    for block in blocks:
        assert block.edata[VISITS].shape == (block.num_edges(),)
        assert torch.all(block.edata[VISITS] > 0)
        assert torch.max(block.in_degrees()) <= 3


def test_training_pairs_lose_their_direct_edge(tiny_interactions) -> None:
    built = tiny_graph(tiny_interactions)
    dgl.seed(0)
    sampler = NeighborSampler(built, WalkConfig(num_layers=1, num_random_walks=20, num_neighbors=7))
    heads, tails = torch.tensor([0]), torch.tensor([1])
    uncut = sampler.blocks(torch.tensor([0, 1]))[0]
    cut = sampler.blocks(torch.tensor([0, 1]), heads, tails)[0]

    def linked(block: dgl.DGLGraph) -> bool:
        src, dst = block.edges()
        ids_src, ids_dst = block.srcdata[dgl.NID][src], block.dstdata[dgl.NID][dst]
        return bool(((ids_src == 1) & (ids_dst == 0)).any() | ((ids_src == 0) & (ids_dst == 1)).any())

    assert linked(uncut) and not linked(cut)


def test_seeds_cover_heads_tails_and_negatives(tiny_interactions) -> None:
    batch = ItemPairSampler(tiny_graph(tiny_interactions), torch.Generator().manual_seed(1)).sample(16)
    seeds = set(seeds_of(batch).tolist())
    assert set(batch.heads.tolist()) | set(batch.tails.tolist()) | set(batch.negatives.tolist()) == seeds
