"""MINT-IQA's instruction-aware explanation branch: explaining scores in words over a frozen LLM.

* ``qa`` — question-answer pairs from labels (MINT-IQA Fig. 5); ``vqa`` — VQA accuracy (eq. 6-10);
* ``branch`` — the instruction branch (a second Q-Former, the zero-initialised connection, the LLM projection);
* ``tuning`` — instruction tuning of a branch; ``feedback`` — the branch's answers fed back to the regressors;
* ``answer`` — ``Answerer.load(folder).ask(image, prompt, question)`` over a trained branch.

The LLM is loaded offline by ``agiqa.models.llm``.
"""
