"""The article's perceptron f(x, w) = w^T x, one output per class.

A single linear layer on the flattened input, trained by gradient descent on
the cross-entropy: a linear classifier. (Rosenblatt's mistake-driven rule is a
different algorithm and lives in ``deepdive.scratch.perceptron``.)
"""


def build(nn, F, input_shape, num_classes, article_exact=False):
    in_features = 1
    for s in input_shape:
        in_features *= int(s)

    class Perceptron(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(in_features, num_classes)

        def forward(self, x):
            x = x.reshape(x.shape[0], in_features)
            return self.fc(x)  # f(x, w) = w^T x (+ b)

    return Perceptron()
