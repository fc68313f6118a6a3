"""Layers and the Module they are built from: ``from tinynet import nn``."""
from . import init
from .container import ModuleList, Sequential
from .layers import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, Conv2d, ConvTranspose2d,
                     Dropout, Flatten, Identity, LeakyReLU, Linear, LogSoftmax, MaxPool2d, ReLU,
                     ReLU6, Sigmoid, Softmax, Tanh)
from .module import Module, Parameter, RemovableHandle
from .padding import ConstantPad2d, ZeroPad2d
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
