//! Reading Query-API answers: AWS XML carries a default namespace, so elements are matched
//! by local name.

use roxmltree::Node;

/// Element children of `node` with local name `name`.
pub(crate) fn children<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

/// The text of the first child element named `name`.
pub(crate) fn text(node: Node<'_, '_>, name: &'static str) -> Option<String> {
    children(node, name).find_map(|n| n.text()).map(str::to_owned)
}
