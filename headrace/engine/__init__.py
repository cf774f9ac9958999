"""Inference: the model, tokenizer, sampler, detokeniser and the engines that drive them.

The engine knows nothing of tenants or HTTP: it takes a `GenerationRequest` of token ids and
sampling parameters and yields `GenerationEvent`s.
"""
