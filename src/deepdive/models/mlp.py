"""The article's multi-layer perceptron ``SimpleNet``: flatten -> 128 -> 64 -> classes.

Written once against an ``nn``/``F`` namespace so that the same class body runs
on ``torch.nn`` and on ``deepdive.scratch.nn``. The article's code applies ReLU
to the final logits too, clipping every negative logit to 0 (a defect: classes
can no longer be pushed below the others). ``article_exact=True`` keeps it.
"""


def build(nn, F, input_shape, num_classes, article_exact=False):
    in_features = 1
    for s in input_shape:
        in_features *= int(s)

    class SimpleNet(nn.Module):
        def __init__(self):
            super(SimpleNet, self).__init__()
            self.fc1 = nn.Linear(in_features, 128)
            self.fc2 = nn.Linear(128, 64)
            self.fc3 = nn.Linear(64, num_classes)

        def forward(self, x):
            x = x.view(-1, in_features)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            x = self.fc3(x)
            if article_exact:
                x = F.relu(x)  # as published: ReLU on the logits
            return x

    return SimpleNet()
