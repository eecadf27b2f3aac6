//! The Terraform module in `terraform/`: the other way to build the machines of
//! `lab up --provider aws`, which lab adopts through the module's `lab` output
//! (`--from-terraform DIR` runs `terraform -chdir=DIR output -json lab`).
//!
//! Nothing here talks to AWS. Every `*.tf` file is parsed with hcl-edit and checked
//! structurally: the output contract lab parses, the `lab` tag on everything that takes tags,
//! references that resolve, the shape of the instances, security group and role, and the
//! variables the user-data template gets. Each checker is also run on a small broken module
//! to show that it reports what it is for. With a `terraform` binary on PATH the module must
//! pass `terraform fmt`, the user data is rendered and checked with `sh -n`, and
//! `terraform output` on `tests/fixtures/terraform/terraform.tfstate` pins the JSON shape;
//! without one those parts fail (LABNODE_SKIP_TERRAFORM=1 makes them print SKIP instead).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hcl_edit::expr::{Expression, FuncCall, ObjectKey, Traversal, TraversalOperator};
use hcl_edit::structure::{Block, Body};
use hcl_edit::visit::{self, Visit};

/// The scalar keys of `output "lab"` that lab's `TerraformLab` reads, with the expression each
/// must be (whitespace removed).
const CONTRACT: [(&str, &str); 9] = [
    ("name", "var.lab_name"),
    ("region", "var.region"),
    ("cluster", "var.cluster_name"),
    ("kms_key_id", "aws_kms_key.seal.key_id"),
    ("join_tag_key", "var.join_tag_key"),
    ("join_tag_value", "local.join_tag_value"),
    ("ssh_user", "var.ssh_user"),
    ("api_port", "var.api_port"),
    ("cluster_port", "var.cluster_port"),
];

/// The keys of each element of the contract's `nodes`, with their expressions; `{k}` and `{v}`
/// stand for the `for` expression's index and instance variables.
const NODE_CONTRACT: [(&str, &str); 4] = [
    ("name", "\"node${{k}+1}\""),
    ("instance_id", "{v}.id"),
    ("private_ip", "{v}.private_ip"),
    ("public_ip", "{v}.public_ip"),
];

/// Resource types that take `tags` in the AWS provider: each must carry `lab` and `Name`.
const TAGGED: &[&str] = &[
    "aws_instance",
    "aws_security_group",
    "aws_kms_key",
    "aws_iam_role",
    "aws_iam_instance_profile",
    "aws_key_pair",
    "aws_vpc",
    "aws_subnet",
    "aws_internet_gateway",
    "aws_route_table",
    "aws_vpc_security_group_ingress_rule",
    "aws_vpc_security_group_egress_rule",
    "aws_eip",
    "aws_ebs_volume",
    "aws_network_interface",
    "aws_nat_gateway",
    "aws_launch_template",
];

/// Resource types without tags.
const UNTAGGED: &[&str] = &[
    "aws_kms_alias",
    "aws_iam_role_policy",
    "aws_iam_role_policy_attachment",
    "aws_route_table_association",
    "aws_route",
    "aws_security_group_rule",
    "aws_volume_attachment",
    "aws_eip_association",
];

/// What the module must build: the shape `lab up --provider aws` creates through the APIs.
const REQUIRED: &[&str] = &[
    "aws_instance",
    "aws_security_group",
    "aws_kms_key",
    "aws_kms_alias",
    "aws_iam_role",
    "aws_iam_role_policy",
    "aws_iam_instance_profile",
    "aws_key_pair",
];

/// The files the module is documented to have.
const MODULE_FILES: &[&str] = &["versions.tf", "variables.tf", "main.tf", "outputs.tf"];

fn module_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("terraform")
}

fn fixture_state() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/terraform.tfstate")
}

/// A parsed module: each file's path (relative to the module) and body.
struct Module {
    files: Vec<(String, Body)>,
}

impl Module {
    /// Parses every `*.tf` under `dir`; the errors name the file and the parser's message.
    fn load(dir: &Path) -> Result<Module, Vec<String>> {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for path in tf_files(dir) {
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            match hcl_edit::parser::parse_body(&source) {
                Ok(body) => files.push((name, body)),
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            }
        }
        if errors.is_empty() {
            Ok(Module { files })
        } else {
            Err(errors)
        }
    }

    /// The module in `terraform/`, or a panic listing every file that does not parse.
    fn terraform() -> Module {
        Module::load(&module_dir()).unwrap_or_else(|errors| panic!("HCL errors:\n{}", errors.join("\n")))
    }

    /// A module from inline sources, for showing that a checker reports what it should.
    fn from_sources(sources: &[(&str, &str)]) -> Module {
        let files = sources
            .iter()
            .map(|(name, source)| {
                let body = hcl_edit::parser::parse_body(source).unwrap_or_else(|e| panic!("{name}: {e}"));
                ((*name).to_owned(), body)
            })
            .collect();
        Module { files }
    }

    /// Every top-level block named `ident`, with its file.
    fn blocks<'a>(&'a self, ident: &'a str) -> impl Iterator<Item = (&'a str, &'a Block)> + 'a {
        self.files
            .iter()
            .flat_map(move |(file, body)| body.get_blocks(ident).map(move |block| (file.as_str(), block)))
    }

    /// The resource `ty.name`.
    fn resource(&self, ty: &str, name: &str) -> Option<&Block> {
        self.blocks("resource")
            .map(|(_, block)| block)
            .find(|block| labels(block) == [ty, name])
    }

    /// Every resource of type `ty`, with its file.
    fn resources<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (&'a str, &'a Block)> + 'a {
        self.blocks("resource")
            .filter(move |(_, block)| labels(block).first() == Some(&ty))
    }

    /// The attributes of every `locals` block.
    fn locals(&self) -> BTreeMap<String, &Expression> {
        self.blocks("locals")
            .flat_map(|(_, block)| block.body.attributes())
            .map(|attr| (attr.key.as_str().to_owned(), &attr.value))
            .collect()
    }
}

/// Every `*.tf` under `dir`, sorted; hidden directories (`.terraform/`) are Terraform's own.
fn tf_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).unwrap_or_else(|e| panic!("{}: {e}", current.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') {
                    pending.push(path);
                }
            } else if name.ends_with(".tf") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn labels(block: &Block) -> Vec<&str> {
    block.labels.iter().map(|label| label.as_str()).collect()
}

/// An expression's source without whitespace, for comparing with the expected form.
fn text(expr: &Expression) -> String {
    expr.to_string().split_whitespace().collect()
}

fn attr_text(block: &Block, key: &str) -> Option<String> {
    block.body.get_attribute(key).map(|attr| text(&attr.value))
}

/// An object key as Terraform reads it: `a`, `"a"` and `(expr)` (kept as its source).
fn key_name(key: &ObjectKey) -> String {
    match key {
        ObjectKey::Ident(ident) => ident.as_str().to_owned(),
        ObjectKey::Expression(Expression::String(s)) => s.as_str().to_owned(),
        ObjectKey::Expression(expr) => text(expr),
    }
}

/// The string elements of an array literal.
fn string_list(expr: &Expression) -> Option<Vec<String>> {
    let Expression::Array(array) = expr else {
        return None;
    };
    array.iter().map(|e| e.as_str().map(str::to_owned)).collect()
}

/// The tags an expression certainly sets (key to value source): object literals, `merge()`
/// of such (later arguments win, as in Terraform) and `local.X` naming one.
fn tag_keys(expr: &Expression, locals: &BTreeMap<String, &Expression>) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    match expr {
        Expression::Object(object) => {
            for (key, value) in object.iter() {
                keys.insert(key_name(key), text(value.expr()));
            }
        }
        Expression::FuncCall(call) if call.name.name.as_str() == "merge" => {
            for arg in call.args.iter() {
                keys.extend(tag_keys(arg, locals));
            }
        }
        Expression::Parenthesis(inner) => keys.extend(tag_keys(inner.inner(), locals)),
        Expression::Traversal(traversal) => {
            if let (Expression::Variable(root), [name]) = (&traversal.expr, attr_path(traversal).as_slice()) {
                if root.as_str() == "local" {
                    if let Some(local) = locals.get(*name) {
                        keys.extend(tag_keys(local, locals));
                    }
                }
            }
        }
        _ => {}
    }
    keys
}

/// The leading `.name` steps of a traversal (`aws_vpc.lab[0].id` gives `lab`).
fn attr_path(traversal: &Traversal) -> Vec<&str> {
    traversal
        .operators
        .iter()
        .map_while(|op| match op.value() {
            TraversalOperator::GetAttr(ident) => Some(ident.as_str()),
            _ => None,
        })
        .collect()
}

/// Problems with `output "lab"`: its keys must be exactly lab's contract, built from the
/// expected expressions, with `nodes` one object per `aws_instance.node` in order.
fn lab_output_problems(module: &Module) -> Vec<String> {
    let outputs: Vec<_> = module
        .blocks("output")
        .filter(|(_, block)| labels(block) == ["lab"])
        .collect();
    let [(file, block)] = outputs.as_slice() else {
        return vec![format!("expected one output \"lab\", found {}", outputs.len())];
    };
    let Some(Expression::Object(value)) = block.body.get_attribute("value").map(|attr| &attr.value) else {
        return vec![format!("{file}: output \"lab\" has no object `value`")];
    };
    let entries: BTreeMap<String, &Expression> = value.iter().map(|(k, v)| (key_name(k), v.expr())).collect();
    let mut problems = Vec::new();
    let want: BTreeSet<&str> = CONTRACT.iter().map(|(key, _)| *key).chain(["nodes"]).collect();
    let have: BTreeSet<&str> = entries.keys().map(String::as_str).collect();
    for missing in want.difference(&have) {
        problems.push(format!(
            "{file}: output \"lab\" lacks `{missing}`, which lab reads"
        ));
    }
    for extra in have.difference(&want) {
        problems.push(format!(
            "{file}: output \"lab\" has `{extra}`, which is not in lab's contract \
             (lab/src/provider/terraform.rs must change with it)"
        ));
    }
    for (key, expected) in CONTRACT {
        if let Some(expr) = entries.get(key) {
            if text(expr) != expected {
                problems.push(format!(
                    "{file}: output \"lab\": `{key}` is `{}`, want `{expected}`",
                    text(expr)
                ));
            }
        }
    }
    match entries.get("nodes") {
        Some(Expression::ForExpr(for_expr)) => {
            let collection = text(&for_expr.intro.collection_expr);
            if collection != "aws_instance.node" {
                problems.push(format!(
                    "{file}: `nodes` iterates `{collection}`, want `aws_instance.node`"
                ));
            }
            if for_expr.key_expr.is_some() || for_expr.cond.is_some() {
                problems.push(format!(
                    "{file}: `nodes` must be a list with every instance (no `=>`, no `if`)"
                ));
            }
            let k = for_expr.intro.key_var.as_ref().map_or("<none>", |k| k.as_str());
            let v = for_expr.intro.value_var.as_str();
            let Expression::Object(node) = &for_expr.value_expr else {
                problems.push(format!("{file}: `nodes` elements must be objects"));
                return problems;
            };
            let node: BTreeMap<String, String> =
                node.iter().map(|(k, v)| (key_name(k), text(v.expr()))).collect();
            let want: BTreeMap<String, String> = NODE_CONTRACT
                .iter()
                .map(|(key, expr)| ((*key).to_owned(), expr.replace("{k}", k).replace("{v}", v)))
                .collect();
            if node != want {
                problems.push(format!("{file}: `nodes` elements are {node:?}, want {want:?}"));
            }
        }
        Some(other) => problems.push(format!(
            "{file}: `nodes` is `{}`, want a for expression over aws_instance.node",
            text(other)
        )),
        None => {}
    }
    problems
}

/// Problems with tags: every resource that takes tags sets `Name` and `lab = var.lab_name`
/// (or the aws provider sets `lab` in `default_tags`); unknown resource types are reported
/// so that a new one is classified rather than skipped.
fn tag_problems(module: &Module) -> Vec<String> {
    let locals = module.locals();
    let default_lab = module
        .blocks("provider")
        .filter(|(_, block)| labels(block) == ["aws"])
        .flat_map(|(_, block)| block.body.get_blocks("default_tags"))
        .filter_map(|default_tags| default_tags.body.get_attribute("tags"))
        .any(|tags| tag_keys(&tags.value, &locals).get("lab").map(String::as_str) == Some("var.lab_name"));
    let mut problems = Vec::new();
    for (file, block) in module.blocks("resource") {
        let [ty, name] = labels(block)[..] else {
            problems.push(format!("{file}: a resource block without type and name"));
            continue;
        };
        let here = format!("{file}: resource \"{ty}\" \"{name}\"");
        if UNTAGGED.contains(&ty) {
            continue;
        }
        if !TAGGED.contains(&ty) {
            problems.push(format!(
                "{here}: not known whether {ty} takes tags; add it to TAGGED or UNTAGGED in this test"
            ));
            continue;
        }
        let Some(tags) = block.body.get_attribute("tags") else {
            problems.push(format!("{here} has no tags"));
            continue;
        };
        let keys = tag_keys(&tags.value, &locals);
        if !default_lab && keys.get("lab").map(String::as_str) != Some("var.lab_name") {
            problems.push(format!("{here}: tags lack lab = var.lab_name (found {keys:?})"));
        }
        if !keys.contains_key("Name") {
            problems.push(format!("{here}: tags lack Name (found {keys:?})"));
        }
    }
    problems
}

/// The references of an expression tree: `var.X`, `local.X`, `data.T.N` and `aws_T.N`.
#[derive(Default)]
struct References {
    vars: BTreeSet<String>,
    locals: BTreeSet<String>,
    data: BTreeSet<(String, String)>,
    resources: BTreeSet<(String, String)>,
}

impl Visit for References {
    fn visit_traversal(&mut self, node: &Traversal) {
        if let Expression::Variable(root) = &node.expr {
            match (root.as_str(), attr_path(node).as_slice()) {
                ("var", [name, ..]) => {
                    self.vars.insert((*name).to_owned());
                }
                ("local", [name, ..]) => {
                    self.locals.insert((*name).to_owned());
                }
                ("data", [ty, name, ..]) => {
                    self.data.insert(((*ty).to_owned(), (*name).to_owned()));
                }
                (ty, [name, ..]) if ty.starts_with("aws_") => {
                    self.resources.insert((ty.to_owned(), (*name).to_owned()));
                }
                _ => {}
            }
        }
        visit::visit_traversal(self, node);
    }
}

fn references(block: &Block) -> References {
    let mut refs = References::default();
    refs.visit_body(&block.body);
    refs
}

/// Problems with references: every `var.X` is a declared variable and every variable is used
/// outside its own declaration; a variable's validation refers only to itself (Terraform
/// before 1.9 allows nothing else); every `local.X`, `data.T.N` and `aws_T.N` is defined.
fn reference_problems(module: &Module) -> Vec<String> {
    let declared: BTreeSet<String> = module
        .blocks("variable")
        .filter_map(|(_, block)| labels(block).first().map(|name| (*name).to_owned()))
        .collect();
    let locals: BTreeSet<String> = module.locals().into_keys().collect();
    let declared_blocks = |ident: &str| -> BTreeSet<(String, String)> {
        module
            .blocks(ident)
            .filter_map(|(_, block)| match labels(block)[..] {
                [ty, name] => Some((ty.to_owned(), name.to_owned())),
                _ => None,
            })
            .collect()
    };
    let resources = declared_blocks("resource");
    let data = declared_blocks("data");
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (file, body) in &module.files {
        for block in body.blocks() {
            let here = format!("{file}: {} {}", block.ident.as_str(), labels(block).join("."));
            let refs = references(block);
            if block.ident.as_str() == "variable" {
                let own = labels(block).first().copied().unwrap_or_default();
                for other in refs.vars.iter().filter(|v| v.as_str() != own) {
                    problems.push(format!(
                        "{here}: refers to var.{other}; a validation may use only var.{own}"
                    ));
                }
            } else {
                used.extend(refs.vars.iter().cloned());
            }
            for var in refs.vars.difference(&declared) {
                problems.push(format!("{here}: var.{var} is not declared"));
            }
            for local in refs.locals.difference(&locals) {
                problems.push(format!("{here}: local.{local} is not defined"));
            }
            for (ty, name) in refs.data.difference(&data) {
                problems.push(format!("{here}: data.{ty}.{name} is not declared"));
            }
            for (ty, name) in refs.resources.difference(&resources) {
                problems.push(format!("{here}: {ty}.{name} is not declared"));
            }
        }
    }
    for unused in declared.difference(&used) {
        problems.push(format!("variable \"{unused}\" is declared but never used"));
    }
    problems
}

/// One `templatefile()` call: where it is, the template's file name and the variables passed.
struct TemplateCall {
    file: String,
    template: String,
    vars: BTreeMap<String, String>,
}

#[derive(Default)]
struct TemplateCalls {
    file: String,
    calls: Vec<TemplateCall>,
    problems: Vec<String>,
}

impl Visit for TemplateCalls {
    fn visit_func_call(&mut self, node: &FuncCall) {
        if node.name.name.as_str() == "templatefile" {
            let args: Vec<&Expression> = node.args.iter().collect();
            let path = args.first().map(|e| text(e)).unwrap_or_default();
            let template = path
                .strip_prefix("\"${path.module}/")
                .and_then(|rest| rest.strip_suffix('"'));
            match (template, args.get(1)) {
                (Some(template), Some(Expression::Object(vars))) => self.calls.push(TemplateCall {
                    file: self.file.clone(),
                    template: template.to_owned(),
                    vars: vars.iter().map(|(k, v)| (key_name(k), text(v.expr()))).collect(),
                }),
                _ => self.problems.push(format!(
                    "{}: templatefile({path}, ...) must name \"${{path.module}}/FILE\" and pass an object literal",
                    self.file
                )),
            }
        }
        visit::visit_func_call(self, node);
    }
}

fn template_calls(module: &Module) -> (Vec<TemplateCall>, Vec<String>) {
    let mut visitor = TemplateCalls::default();
    for (file, body) in &module.files {
        visitor.file.clone_from(file);
        visitor.visit_body(body);
    }
    (visitor.calls, visitor.problems)
}

/// The variable names a Terraform template interpolates.
#[derive(Default)]
struct TemplateVariables(BTreeSet<String>);

impl Visit for TemplateVariables {
    fn visit_expr(&mut self, node: &Expression) {
        if let Expression::Variable(name) = node {
            self.0.insert(name.as_str().to_owned());
        } else {
            visit::visit_expr(self, node);
        }
    }
}

/// Problems with template calls: the template exists and parses, uses exactly the variables
/// it is given (templatefile fails on a missing one; an unused one is a mistake), and is a
/// POSIX sh script.
fn template_problems(module: &Module, dir: &Path) -> Vec<String> {
    let (calls, mut problems) = template_calls(module);
    for call in &calls {
        let path = dir.join(&call.template);
        let source = match std::fs::read_to_string(&path) {
            Ok(source) => source,
            Err(e) => {
                problems.push(format!("{}: template {}: {e}", call.file, path.display()));
                continue;
            }
        };
        let template = match hcl_edit::parser::parse_template(&source) {
            Ok(template) => template,
            Err(e) => {
                problems.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let mut used = TemplateVariables::default();
        used.visit_template(&template);
        let given: BTreeSet<String> = call.vars.keys().cloned().collect();
        for missing in used.0.difference(&given) {
            problems.push(format!(
                "{}: {} uses ${{{missing}}}, which templatefile() does not pass",
                call.file, call.template
            ));
        }
        for unused in given.difference(&used.0) {
            problems.push(format!(
                "{}: templatefile() passes `{unused}`, which {} never uses",
                call.file, call.template
            ));
        }
        if !source.starts_with("#!/bin/sh\n") {
            problems.push(format!("{}: must start with #!/bin/sh", call.template));
        }
    }
    problems
}

/// Problems with the node machinery the brief describes: tagged, IMDSv2-only instances with
/// encrypted gp3 volumes and fixed addresses; a security group open only to allowed_cidr and
/// to its own members; a role limited to DescribeInstances and this cluster's key.
fn shape_problems(module: &Module) -> Vec<String> {
    let mut problems = Vec::new();
    let locals = module.locals();
    for ty in REQUIRED {
        if module.resources(ty).next().is_none() {
            problems.push(format!("no {ty} resource"));
        }
    }

    match module.resource("aws_instance", "node") {
        None => problems.push("no aws_instance.node (the `lab` output lists its instances)".to_owned()),
        Some(node) => {
            let mut expect = |what: &str, got: Option<String>, want: &str| {
                if got.as_deref() != Some(want) {
                    problems.push(format!("aws_instance.node: {what} is {got:?}, want {want}"));
                }
            };
            expect("count", attr_text(node, "count"), "var.node_count");
            let tags = node
                .body
                .get_attribute("tags")
                .map(|tags| tag_keys(&tags.value, &locals))
                .unwrap_or_default();
            expect(
                "the join tag",
                tags.get("(var.join_tag_key)").cloned(),
                "local.join_tag_value",
            );
            expect(
                "the lab-node tag",
                tags.get("lab-node").cloned(),
                "\"${var.cluster_name}/${local.nodes[count.index].name}\"",
            );
            let metadata = node.body.get_blocks("metadata_options").next();
            expect(
                "http_tokens",
                metadata.and_then(|m| attr_text(m, "http_tokens")),
                "\"required\"",
            );
            let root = node.body.get_blocks("root_block_device").next();
            expect(
                "root volume encryption",
                root.and_then(|r| attr_text(r, "encrypted")),
                "true",
            );
            expect(
                "root volume type",
                root.and_then(|r| attr_text(r, "volume_type")),
                "\"gp3\"",
            );
            let root_tags = root
                .and_then(|r| r.body.get_attribute("tags"))
                .map(|tags| tag_keys(&tags.value, &locals))
                .unwrap_or_default();
            expect(
                "the root volume's lab tag",
                root_tags.get("lab").cloned(),
                "var.lab_name",
            );
            expect(
                "private_ip",
                attr_text(node, "private_ip"),
                "local.nodes[count.index].private_ip",
            );
            expect("first host", locals.get("first_host").map(|e| text(e)), "11");
            let address = locals.get("nodes").map(|e| text(e)).unwrap_or_default();
            if !address.contains("cidrhost(local.subnet_cidr,local.first_host+i)") {
                problems.push(format!(
                    "local.nodes must place node i at cidrhost(subnet, first_host + i): {address}"
                ));
            }
        }
    }

    for (file, sg) in module.resources("aws_security_group") {
        let mut rules = BTreeSet::new();
        for ingress in sg.body.get_blocks("ingress") {
            let port = attr_text(ingress, "from_port").unwrap_or_default();
            if attr_text(ingress, "to_port").as_deref() != Some(port.as_str()) {
                problems.push(format!(
                    "{file}: ingress from port {port} must open that one port"
                ));
            }
            if let Some(cidrs) = attr_text(ingress, "cidr_blocks") {
                if cidrs != "[var.allowed_cidr]" {
                    problems.push(format!(
                        "{file}: ingress on {port} is open to {cidrs}, not only var.allowed_cidr"
                    ));
                }
                rules.insert(format!("{port} from allowed_cidr"));
            }
            if attr_text(ingress, "self").as_deref() == Some("true") {
                rules.insert(format!("{port} from self"));
            }
        }
        for want in [
            "22 from allowed_cidr",
            "var.api_port from allowed_cidr",
            "var.api_port from self",
            "var.cluster_port from self",
        ] {
            if !rules.contains(want) {
                problems.push(format!(
                    "{file}: the security group lacks ingress {want} (has {rules:?})"
                ));
            }
        }
        if sg.body.get_blocks("egress").next().is_none() {
            problems.push(format!(
                "{file}: the security group has no egress (nodes must reach EC2 and KMS)"
            ));
        }
    }

    for (file, key) in module.resources("aws_kms_key") {
        if attr_text(key, "deletion_window_in_days").as_deref() != Some("7") {
            problems.push(format!("{file}: the KMS key's deletion window must be 7 days"));
        }
        if attr_text(key, "enable_key_rotation").as_deref() != Some("true") {
            problems.push(format!("{file}: the KMS key must rotate"));
        }
    }

    // The role's inline policies: exactly DescribeInstances on * and three KMS actions on the key.
    for (file, policy) in module.resources("aws_iam_role_policy") {
        let doc = attr_text(policy, "policy").unwrap_or_default();
        let Some(name) = doc
            .strip_prefix("data.aws_iam_policy_document.")
            .and_then(|rest| rest.strip_suffix(".json"))
        else {
            problems.push(format!(
                "{file}: the role policy must come from an aws_iam_policy_document: {doc}"
            ));
            continue;
        };
        let Some((_, document)) = module
            .blocks("data")
            .find(|(_, block)| labels(block) == ["aws_iam_policy_document", name])
        else {
            problems.push(format!("{file}: data.aws_iam_policy_document.{name} is missing"));
            continue;
        };
        let mut granted = BTreeMap::new();
        for statement in document.body.get_blocks("statement") {
            let actions = statement
                .body
                .get_attribute("actions")
                .and_then(|a| string_list(&a.value))
                .unwrap_or_default();
            let resources = attr_text(statement, "resources").unwrap_or_default();
            for action in actions {
                granted.insert(action, resources.clone());
            }
        }
        let want: BTreeMap<String, String> = [
            ("ec2:DescribeInstances", "[\"*\"]"),
            ("kms:Decrypt", "[aws_kms_key.seal.arn]"),
            ("kms:DescribeKey", "[aws_kms_key.seal.arn]"),
            ("kms:Encrypt", "[aws_kms_key.seal.arn]"),
        ]
        .into_iter()
        .map(|(action, resources)| (action.to_owned(), resources.to_owned()))
        .collect();
        if granted != want {
            problems.push(format!(
                "{file}: the node policy grants {granted:?}, want {want:?}"
            ));
        }
    }
    problems
}

fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

fn assert_reports(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem mentioning {needle:?}, got:\n{}",
        problems.join("\n")
    );
}

/// Runs terraform without prompts, telemetry or color.
fn run_terraform(terraform: &Path, args: &[&str]) -> Output {
    Command::new(terraform)
        .args(args)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("running {} {args:?}: {e}", terraform.display()))
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every `.tf` file must parse, or nothing else here means anything; the check itself must
/// name a broken file and the parser's complaint, so a syntax slip is found without terraform.
#[test]
fn every_tf_file_parses_and_a_broken_one_is_named() {
    let dir = module_dir();
    let files = tf_files(&dir);
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
        .collect();
    for want in MODULE_FILES {
        assert!(
            names.contains(*want),
            "terraform/{want} is missing; found {names:?}"
        );
    }
    let module = Module::terraform();
    assert_eq!(module.files.len(), files.len());

    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("good.tf"), "variable \"x\" {}\n").unwrap();
    std::fs::write(
        broken.path().join("bad.tf"),
        "resource \"aws_vpc\" \"x\" {\n  cidr_block = \n",
    )
    .unwrap();
    let errors = Module::load(broken.path()).err().expect("bad.tf must not parse");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("bad.tf"),
        "the error must name the file: {}",
        errors[0]
    );
}

/// `lab up --from-terraform` deserializes `output "lab"` into lab's `TerraformLab`: a renamed,
/// missing or extra key, or a value built from the wrong thing (the key ARN instead of its
/// id, a filtered node list), breaks adoption only at run time against real AWS.
#[test]
fn lab_output_has_exactly_the_contract_lab_parses() {
    assert_no_problems("output \"lab\"", &lab_output_problems(&Module::terraform()));

    let drifted = Module::from_sources(&[(
        "outputs.tf",
        r#"output "lab" {
  value = {
    name           = var.lab_name
    region         = var.region
    cluster        = var.cluster_name
    kms_key_id     = aws_kms_key.seal.arn
    join_tag_key   = var.join_tag_key
    join_tag_value = local.join_tag_value
    api_port       = var.api_port
    cluster_port   = var.cluster_port
    extra          = 1
    nodes = [for i, inst in aws_instance.node : {
      name = "node${i + 1}", instance_id = inst.id, private_ip = inst.private_ip, public_ip = inst.public_dns
    }]
  }
}
"#,
    )]);
    let problems = lab_output_problems(&drifted);
    assert_reports(&problems, "lacks `ssh_user`");
    assert_reports(&problems, "has `extra`");
    assert_reports(&problems, "`kms_key_id` is `aws_kms_key.seal.arn`");
    assert_reports(&problems, "`nodes` elements are");
    assert_eq!(problems.len(), 4, "{problems:#?}");
}

/// The `lab` tag is how a lab's resources are found, billed and cleaned up; `Name` is how
/// people recognize them in the console. A new resource type that is not classified fails
/// here instead of slipping through untagged.
#[test]
fn every_taggable_resource_carries_the_lab_tag() {
    let module = Module::terraform();
    assert_no_problems("tags", &tag_problems(&module));

    let untagged = Module::from_sources(&[(
        "main.tf",
        r#"locals {
  tags = { lab = var.lab_name }
}
resource "aws_vpc" "ok" {
  tags = merge(local.tags, { Name = "x" })
}
resource "aws_subnet" "no_lab" {
  tags = { Name = "x" }
}
resource "aws_kms_key" "none" {}
resource "aws_kms_alias" "skipped" {}
resource "aws_s3_bucket" "unknown" {}
"#,
    )]);
    let problems = tag_problems(&untagged);
    assert_reports(&problems, "\"aws_subnet\" \"no_lab\": tags lack lab");
    assert_reports(&problems, "\"aws_kms_key\" \"none\" has no tags");
    assert_reports(&problems, "not known whether aws_s3_bucket takes tags");
    assert_eq!(problems.len(), 3, "{problems:#?}");

    let by_default = Module::from_sources(&[(
        "main.tf",
        r#"provider "aws" {
  default_tags {
    tags = { lab = var.lab_name }
  }
}
resource "aws_vpc" "named" {
  tags = { Name = "x" }
}
"#,
    )]);
    assert_no_problems("default_tags", &tag_problems(&by_default));
}

/// `terraform validate` needs the AWS provider from the registry, which tests cannot count
/// on; this catches what it would: an undeclared or unused variable, a validation reaching
/// for another variable, a misspelled local, data source or resource.
#[test]
fn every_reference_resolves_and_every_variable_is_used() {
    assert_no_problems("references", &reference_problems(&Module::terraform()));

    let broken = Module::from_sources(&[(
        "main.tf",
        r#"variable "used" {
  validation {
    condition     = var.used != var.other
    error_message = "x"
  }
}
variable "other" {}
variable "unused" {}
locals {
  a = var.used
}
resource "aws_vpc" "v" {
  cidr_block = "${local.a}-${local.b}-${var.missing}-${var.other}"
  tags       = { x = data.aws_ami.nope.id, y = aws_subnet.nope[0].id }
}
"#,
    )]);
    let problems = reference_problems(&broken);
    assert_reports(
        &problems,
        "refers to var.other; a validation may use only var.used",
    );
    assert_reports(&problems, "var.missing is not declared");
    assert_reports(&problems, "local.b is not defined");
    assert_reports(&problems, "data.aws_ami.nope is not declared");
    assert_reports(&problems, "aws_subnet.nope is not declared");
    assert_reports(&problems, "variable \"unused\" is declared but never used");
    assert_eq!(problems.len(), 6, "{problems:#?}");
}

/// The brief's machinery, checked where it lives: the join tag auto_join looks for, IMDSv2,
/// encrypted volumes, addresses fixed before boot, nothing but ssh and the API reachable
/// from outside, and a role that can touch no other key.
#[test]
fn instances_security_group_key_and_role_have_the_lab_shape() {
    assert_no_problems("shape", &shape_problems(&Module::terraform()));

    let loose = Module::from_sources(&[(
        "main.tf",
        r#"resource "aws_security_group" "node" {
  ingress {
    from_port   = 22
    to_port     = 22
    cidr_blocks = ["0.0.0.0/0"]
  }
}
resource "aws_kms_key" "seal" {
  deletion_window_in_days = 30
}
resource "aws_iam_role_policy" "node" {
  policy = data.aws_iam_policy_document.node.json
}
data "aws_iam_policy_document" "node" {
  statement {
    actions   = ["ec2:DescribeInstances", "kms:Decrypt"]
    resources = ["*"]
  }
}
"#,
    )]);
    let problems = shape_problems(&loose);
    assert_reports(&problems, "no aws_instance.node");
    assert_reports(&problems, "ingress on 22 is open to [\"0.0.0.0/0\"]");
    assert_reports(&problems, "lacks ingress var.cluster_port from self");
    assert_reports(&problems, "has no egress");
    assert_reports(&problems, "deletion window must be 7 days");
    assert_reports(&problems, "must rotate");
    assert_reports(&problems, "the node policy grants");
}

/// templatefile() fails at plan time on a variable the template uses but is not given, and
/// an unused one is a slip; both are checked from the sources. With terraform on PATH the
/// user data is rendered for real and must be valid sh holding instance.json as valid JSON.
#[test]
fn user_data_template_gets_exactly_its_variables_and_renders_valid_sh() {
    let dir = module_dir();
    let module = Module::terraform();
    assert_no_problems("templates", &template_problems(&module, &dir));
    let (calls, _) = template_calls(&module);
    let user_data: Vec<&TemplateCall> = calls
        .iter()
        .filter(|call| call.template == "user-data.sh.tftpl")
        .collect();
    assert_eq!(
        user_data.len(),
        1,
        "one templatefile() of user-data.sh.tftpl expected"
    );

    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("t.tftpl"), "#!/bin/sh\necho ${a} ${b}\n").unwrap();
    let wrong = Module::from_sources(&[(
        "main.tf",
        r#"resource "aws_instance" "x" {
  user_data = templatefile("${path.module}/t.tftpl", { a = 1, c = 2 })
}
"#,
    )]);
    let problems = template_problems(&wrong, scratch.path());
    assert_reports(&problems, "uses ${b}, which templatefile() does not pass");
    assert_reports(&problems, "passes `c`, which t.tftpl never uses");
    assert_eq!(problems.len(), 2, "{problems:#?}");

    let Some(terraform) = testkit::locate::terraform() else {
        return;
    };
    let instance = serde_json::json!({
        "lab": "demo", "name": "node2", "cluster": "primary", "private_ip": "10.42.1.12",
        "api_port": 8200, "cluster_port": 8201, "join_tag_key": "vault", "join_tag_value": "demo-primary",
    });
    let vars: Vec<String> = user_data[0]
        .vars
        .keys()
        .map(|key| match key.as_str() {
            // The JSON text as a string literal (JSON's string escapes are valid in HCL).
            "instance_json" => format!(
                "  {key} = {}",
                serde_json::to_string(&instance.to_string()).unwrap()
            ),
            "ssh_user" => format!("  {key} = \"ec2-user\""),
            _ => format!("  {key} = \"sample-{key}\""),
        })
        .collect();
    let template = dir.join("user-data.sh.tftpl");
    let config = format!(
        "output \"user_data\" {{\n  value = templatefile({}, {{\n{}\n  }})\n}}\n",
        serde_json::to_string(&template.display().to_string()).unwrap(),
        vars.join("\n")
    );
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("main.tf"), &config).unwrap();
    let chdir = format!("-chdir={}", work.path().display());
    assert_success(
        &run_terraform(&terraform, &[&chdir, "init"]),
        "terraform init (no providers)",
    );
    assert_success(
        &run_terraform(&terraform, &[&chdir, "apply", "-auto-approve"]),
        "terraform apply of the rendering config",
    );
    let rendered = run_terraform(&terraform, &[&chdir, "output", "-raw", "user_data"]);
    assert_success(&rendered, "terraform output -raw user_data");
    let script = String::from_utf8(rendered.stdout).unwrap();
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    assert!(
        script.contains("ec2-user"),
        "the ssh user must own /opt/lab:\n{script}"
    );

    let script_path = work.path().join("user-data.sh");
    std::fs::write(&script_path, &script).unwrap();
    let syntax = Command::new("sh").arg("-n").arg(&script_path).output().unwrap();
    assert_success(&syntax, &format!("sh -n on the rendered user data:\n{script}"));
    let embedded: Vec<serde_json::Value> = script
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect();
    assert_eq!(embedded, [instance], "instance.json in:\n{script}");
}

/// The module is meant to be read and edited by Terraform users, whose tools reformat
/// anything `terraform fmt` would change; the diff in the message shows what to fix.
#[test]
fn terraform_fmt_accepts_the_module() {
    let Some(terraform) = testkit::locate::terraform() else {
        return;
    };
    let dir = module_dir();
    let output = run_terraform(
        &terraform,
        &["fmt", "-check", "-recursive", "-diff", &dir.display().to_string()],
    );
    assert_success(&output, "terraform fmt -check -recursive -diff terraform/");
}

/// Pins the JSON lab parses: `terraform output -json lab` on a state holding the module's
/// outputs (terraform reads a local state without providers). The fixture must keep the
/// keys of `output "lab"` in outputs.tf, which is checked even without terraform.
#[test]
fn terraform_output_of_the_fixture_state_has_the_contract_shape() {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_state()).unwrap()).unwrap();
    assert_eq!(state["version"], 4, "state format version");
    let module = Module::terraform();
    let (_, output) = module
        .blocks("output")
        .find(|(_, block)| labels(block) == ["lab"])
        .expect("output \"lab\"");
    let Some(Expression::Object(value)) = output.body.get_attribute("value").map(|attr| &attr.value) else {
        panic!("output \"lab\" has no object value");
    };
    let module_keys: BTreeSet<String> = value.iter().map(|(k, _)| key_name(k)).collect();
    let fixture_keys: BTreeSet<String> = state["outputs"]["lab"]["value"]
        .as_object()
        .expect("outputs.lab.value in the fixture")
        .keys()
        .cloned()
        .collect();
    assert_eq!(fixture_keys, module_keys, "fixture and outputs.tf disagree");

    let Some(terraform) = testkit::locate::terraform() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(fixture_state(), work.path().join("terraform.tfstate")).unwrap();
    let output = run_terraform(
        &terraform,
        &[
            &format!("-chdir={}", work.path().display()),
            "output",
            "-json",
            "lab",
        ],
    );
    assert_success(&output, "terraform output -json lab");
    let lab: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let object = lab.as_object().expect("the lab output is a JSON object");
    let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = CONTRACT.iter().map(|(key, _)| *key).chain(["nodes"]).collect();
    assert_eq!(keys, want);
    for key in [
        "name",
        "region",
        "cluster",
        "kms_key_id",
        "join_tag_key",
        "join_tag_value",
        "ssh_user",
    ] {
        assert!(
            object[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key}: {}",
            object[key]
        );
    }
    for key in ["api_port", "cluster_port"] {
        let port = object[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} must be a number: {}", object[key]));
        assert!(u16::try_from(port).is_ok_and(|p| p > 0), "{key}: {port}");
    }
    assert_eq!(lab["kms_key_id"], "1234abcd-12ab-34cd-56ef-1234567890ab");
    let nodes = lab["nodes"].as_array().expect("nodes is a list");
    assert_eq!(nodes.len(), 3);
    for (i, node) in nodes.iter().enumerate() {
        let node = node.as_object().expect("each node is an object");
        let keys: BTreeSet<&str> = node.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["name", "instance_id", "private_ip", "public_ip"])
        );
        assert_eq!(node["name"], format!("node{}", i + 1), "nodes are in order");
        assert!(node["instance_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("i-")));
        for address in ["private_ip", "public_ip"] {
            let text = node[address].as_str().unwrap_or_default();
            assert!(text.parse::<std::net::Ipv4Addr>().is_ok(), "{address}: {text:?}");
        }
    }
    assert_eq!(
        nodes[0]["private_ip"], "172.31.80.11",
        "node 1 is host 11 of its subnet"
    );
}
