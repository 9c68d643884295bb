"""The core widget models of ipywidgets 7.7.1 and 8.1.8 as their published specifications list them.

``{model name: (JavaScript module, module version, "attribute names")}``, parsed from
github.com/jupyter-widgets/ipywidgets ``packages/schema/jupyterwidgetmodels.latest.md`` at tag 7.7.1 (commit
7ad9e629df574cbcb693cde53b05b5abe520bd7c; the version Colab ships) and ``packages/schema/
jupyterwidgetmodels.latest.json`` at tag 8.1.8 (commit ffd754bf329c0e2b1e6a1d96f28df149478c5717). Used by
tests/test_widget_state.py; data only.
"""

MODELS_7 = {
    "AccordionModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _titles _view_module "
        "_view_module_version _view_name box_style children layout selected_index"),
    "AudioModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name autoplay controls format layout loop value"),
    "BoundedFloatTextModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled layout max min step style "
        "value"),
    "BoundedIntTextModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled layout max min step style "
        "value"),
    "BoxModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name box_style children layout"),
    "ButtonModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name button_style description disabled icon layout style tooltip"),
    "ButtonStyleModel": ("@jupyter-widgets/controls", "1.5.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "button_color font_weight"),
    "CheckboxModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_tooltip disabled indent layout style value"),
    "ColorPickerModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name concise description description_tooltip disabled layout style value"),
    "ComboboxModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled ensure_option layout options "
        "placeholder style value"),
    "ControllerAxisModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name layout value"),
    "ControllerButtonModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name layout pressed value"),
    "ControllerModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name axes buttons connected index layout mapping name timestamp"),
    "DOMWidgetModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name layout value"),
    "DatePickerModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_tooltip disabled layout style value"),
    "DescriptionStyleModel": ("@jupyter-widgets/controls", "1.5.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "description_width"),
    "DirectionalLinkModel": ("@jupyter-widgets/controls", "1.5.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name source "
        "target"),
    "DropdownModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name description description_tooltip disabled index layout style"),
    "FileUploadModel": ("@jupyter-widgets/controls", "1.5.0",
        "_counter _dom_classes _model_module _model_module_version _model_name _view_module "
        "_view_module_version _view_name accept button_style data description description_tooltip disabled "
        "error icon layout metadata multiple style"),
    "FloatLogSliderModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name base continuous_update description description_tooltip disabled layout max min "
        "orientation readout readout_format step style value"),
    "FloatProgressModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name bar_style description description_tooltip layout max min orientation style value"),
    "FloatRangeSliderModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled layout max min orientation "
        "readout readout_format step style value"),
    "FloatSliderModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled layout max min orientation "
        "readout readout_format step style value"),
    "FloatTextModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled layout step style value"),
    "GridBoxModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name box_style children layout"),
    "HBoxModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name box_style children layout"),
    "HTMLMathModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_tooltip layout placeholder style value"),
    "HTMLModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_tooltip layout placeholder style value"),
    "ImageModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name format height layout value width"),
    "IntProgressModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name bar_style description description_tooltip layout max min orientation style value"),
    "IntRangeSliderModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled layout max min orientation "
        "readout readout_format step style value"),
    "IntSliderModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled layout max min orientation "
        "readout readout_format step style value"),
    "IntTextModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled layout step style value"),
    "LabelModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_tooltip layout placeholder style value"),
    "LayoutModel": ("@jupyter-widgets/base", "1.2.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "align_content align_items align_self border bottom display flex flex_flow grid_area "
        "grid_auto_columns grid_auto_flow grid_auto_rows grid_column grid_gap grid_row grid_template_areas "
        "grid_template_columns grid_template_rows height justify_content justify_items left margin max_height "
        "max_width min_height min_width object_fit object_position order overflow overflow_x overflow_y "
        "padding right top visibility width"),
    "LinkModel": ("@jupyter-widgets/controls", "1.5.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name source "
        "target"),
    "OutputModel": ("@jupyter-widgets/output", "1.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name layout msg_id outputs"),
    "PasswordModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled layout placeholder style value"),
    "PlayModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _playing _repeat _view_module "
        "_view_module_version _view_name description description_tooltip disabled interval layout max min "
        "show_repeat step style value"),
    "ProgressStyleModel": ("@jupyter-widgets/controls", "1.5.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "bar_color description_width"),
    "RadioButtonsModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name description description_tooltip disabled index layout style"),
    "SelectModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name description description_tooltip disabled index layout rows style"),
    "SelectMultipleModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name description description_tooltip disabled index layout rows style"),
    "SelectionRangeSliderModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name continuous_update description description_tooltip disabled index "
        "layout orientation readout style"),
    "SelectionSliderModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name continuous_update description description_tooltip disabled index "
        "layout orientation readout style"),
    "SliderStyleModel": ("@jupyter-widgets/controls", "1.5.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "description_width handle_color"),
    "TabModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _titles _view_module "
        "_view_module_version _view_name box_style children layout selected_index"),
    "TextModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled layout placeholder style value"),
    "TextareaModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_tooltip disabled layout placeholder rows style "
        "value"),
    "ToggleButtonModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name button_style description description_tooltip disabled icon layout style tooltip value"),
    "ToggleButtonsModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name button_style description description_tooltip disabled icons index "
        "layout style tooltips"),
    "ToggleButtonsStyleModel": ("@jupyter-widgets/controls", "1.5.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "button_width description_width font_weight"),
    "VBoxModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name box_style children layout"),
    "ValidModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_tooltip disabled layout readout style value"),
    "VideoModel": ("@jupyter-widgets/controls", "1.5.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name autoplay controls format height layout loop value width"),
}

MODELS_8 = {
    "AccordionModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name box_style children layout selected_index tabbable titles tooltip"),
    "AudioModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name autoplay controls format layout loop tabbable tooltip value"),
    "BoundedFloatTextModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_allow_html disabled layout max min step style "
        "tabbable tooltip value"),
    "BoundedIntTextModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_allow_html disabled layout max min step style "
        "tabbable tooltip value"),
    "BoxModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name box_style children layout tabbable tooltip"),
    "ButtonModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name button_style description disabled icon layout style tabbable tooltip"),
    "ButtonStyleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "button_color font_family font_size font_style font_variant font_weight text_color text_decoration"),
    "CheckboxModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_allow_html disabled indent layout style tabbable tooltip value"),
    "CheckboxStyleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "background description_width"),
    "ColorPickerModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name concise description description_allow_html disabled layout style tabbable tooltip value"),
    "ColorsInputModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name allow_duplicates allowed_tags description description_allow_html layout placeholder style "
        "tabbable tooltip value"),
    "ComboboxModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_allow_html disabled ensure_option layout "
        "options placeholder style tabbable tooltip value"),
    "ControllerAxisModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name layout tabbable tooltip value"),
    "ControllerButtonModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name layout pressed tabbable tooltip value"),
    "ControllerModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name axes buttons connected index layout mapping name tabbable timestamp tooltip"),
    "DOMWidgetModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name layout tabbable tooltip value"),
    "DatePickerModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_allow_html disabled layout max min step style tabbable tooltip "
        "value"),
    "DatetimeModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_allow_html disabled layout max min style tabbable tooltip value"),
    "DescriptionStyleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "description_width"),
    "DirectionalLinkModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name source "
        "target"),
    "DropdownModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name description description_allow_html disabled index layout style "
        "tabbable tooltip"),
    "FileUploadModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name accept button_style description description_allow_html disabled error icon layout "
        "multiple style tabbable tooltip value"),
    "FloatLogSliderModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name base behavior continuous_update description description_allow_html disabled layout max "
        "min orientation readout readout_format step style tabbable tooltip value"),
    "FloatProgressModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name bar_style description description_allow_html layout max min orientation style tabbable "
        "tooltip value"),
    "FloatRangeSliderModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name behavior continuous_update description description_allow_html disabled layout max min "
        "orientation readout readout_format step style tabbable tooltip value"),
    "FloatSliderModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name behavior continuous_update description description_allow_html disabled layout max min "
        "orientation readout readout_format step style tabbable tooltip value"),
    "FloatTextModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_allow_html disabled layout step style tabbable "
        "tooltip value"),
    "FloatsInputModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name allow_duplicates allowed_tags description description_allow_html format layout max min "
        "placeholder style tabbable tag_style tooltip value"),
    "GridBoxModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name box_style children layout tabbable tooltip"),
    "HBoxModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name box_style children layout tabbable tooltip"),
    "HTMLMathModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_allow_html layout placeholder style tabbable tooltip value"),
    "HTMLMathStyleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "background description_width font_size text_color"),
    "HTMLModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_allow_html layout placeholder style tabbable tooltip value"),
    "HTMLStyleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "background description_width font_size text_color"),
    "ImageModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name format height layout tabbable tooltip value width"),
    "IntProgressModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name bar_style description description_allow_html layout max min orientation style tabbable "
        "tooltip value"),
    "IntRangeSliderModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name behavior continuous_update description description_allow_html disabled layout max min "
        "orientation readout readout_format step style tabbable tooltip value"),
    "IntSliderModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name behavior continuous_update description description_allow_html disabled layout max min "
        "orientation readout readout_format step style tabbable tooltip value"),
    "IntTextModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_allow_html disabled layout step style tabbable "
        "tooltip value"),
    "IntsInputModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name allow_duplicates allowed_tags description description_allow_html format layout max min "
        "placeholder style tabbable tag_style tooltip value"),
    "LabelModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_allow_html layout placeholder style tabbable tooltip value"),
    "LabelStyleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "background description_width font_family font_size font_style font_variant font_weight text_color "
        "text_decoration"),
    "LayoutModel": ("@jupyter-widgets/base", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "align_content align_items align_self border_bottom border_left border_right border_top bottom "
        "display flex flex_flow grid_area grid_auto_columns grid_auto_flow grid_auto_rows grid_column "
        "grid_gap grid_row grid_template_areas grid_template_columns grid_template_rows height "
        "justify_content justify_items left margin max_height max_width min_height min_width object_fit "
        "object_position order overflow padding right top visibility width"),
    "LinkModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name source "
        "target"),
    "NaiveDatetimeModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_allow_html disabled layout max min style tabbable tooltip value"),
    "OutputModel": ("@jupyter-widgets/output", "1.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name layout msg_id outputs tabbable tooltip"),
    "PasswordModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_allow_html disabled layout placeholder style "
        "tabbable tooltip value"),
    "PlayModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_allow_html disabled interval layout max min playing repeat "
        "show_repeat step style tabbable tooltip value"),
    "ProgressStyleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "bar_color description_width"),
    "RadioButtonsModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name description description_allow_html disabled index layout orientation "
        "style tabbable tooltip"),
    "SelectModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name description description_allow_html disabled index layout rows style "
        "tabbable tooltip"),
    "SelectMultipleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name description description_allow_html disabled index layout rows style "
        "tabbable tooltip"),
    "SelectionRangeSliderModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name behavior continuous_update description description_allow_html "
        "disabled index layout orientation readout style tabbable tooltip"),
    "SelectionSliderModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name behavior continuous_update description description_allow_html "
        "disabled index layout orientation readout style tabbable tooltip"),
    "SliderStyleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "description_width handle_color"),
    "StackModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name box_style children layout selected_index tabbable titles tooltip"),
    "TabModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name box_style children layout selected_index tabbable titles tooltip"),
    "TagsInputModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name allow_duplicates allowed_tags description description_allow_html layout placeholder style "
        "tabbable tag_style tooltip value"),
    "TextModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_allow_html disabled layout placeholder style "
        "tabbable tooltip value"),
    "TextStyleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "background description_width font_size text_color"),
    "TextareaModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name continuous_update description description_allow_html disabled layout placeholder rows "
        "style tabbable tooltip value"),
    "TimeModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_allow_html disabled layout max min step style tabbable tooltip "
        "value"),
    "ToggleButtonModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name button_style description description_allow_html disabled icon layout style tabbable "
        "tooltip value"),
    "ToggleButtonStyleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "description_width font_family font_size font_style font_variant font_weight text_color "
        "text_decoration"),
    "ToggleButtonsModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _options_labels _view_module "
        "_view_module_version _view_name button_style description description_allow_html disabled icons index "
        "layout style tabbable tooltip tooltips"),
    "ToggleButtonsStyleModel": ("@jupyter-widgets/controls", "2.0.0",
        "_model_module _model_module_version _model_name _view_module _view_module_version _view_name "
        "button_width description_width font_weight"),
    "VBoxModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name box_style children layout tabbable tooltip"),
    "ValidModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name description description_allow_html disabled layout readout style tabbable tooltip value"),
    "VideoModel": ("@jupyter-widgets/controls", "2.0.0",
        "_dom_classes _model_module _model_module_version _model_name _view_module _view_module_version "
        "_view_name autoplay controls format height layout loop tabbable tooltip value width"),
}
