"""Entropy models and rANS coding, built on compressai's CDF and rANS machinery."""
from .coding import RansTables, decode_symbols, encode_symbols
from .ggm import GeneralizedGaussian

__all__ = ["GeneralizedGaussian", "RansTables", "encode_symbols", "decode_symbols"]
