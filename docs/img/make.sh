#!/bin/sh
# Regenerates the diagrams shown in the README from the specs (needs Graphviz's `dot`).
set -e
cd "$(dirname "$0")/../.."
archdsl render specs/googlenet.arch -n googlenet --only inception3a -o docs/img/googlenet_inception3a.svg
archdsl render specs/resnet.arch -n resnet50 --only resnet_imagenet1.layer2 -o docs/img/resnet50_layer2.svg
archdsl render specs/resnet.arch -n resnet50 --depth 2 -o docs/img/resnet50_depth2.svg
